"""Make lava-nc 0.10.0 importable on Python 3.11, in the bridge's venv only (run by setup.sh).

Python 3.11's dataclasses reject a default whose class has no ``__hash__``; lava's
``ByteEncoder`` is a plain (eq=True, unfrozen) dataclass, hence unhashable, and is the
default of fields in ``CoreEncoder``, ``ChipEncoder`` and ``AxonEncoder``, so importing
``lava.magma.compiler.var_model`` fails. Giving ``ByteEncoder`` ``unsafe_hash=True``
keeps it mutable and its equality unchanged, and satisfies the check. The patch is
idempotent (a marker comment) and verified by importing the module afterwards.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

OLD = "@dataclass\nclass ByteEncoder:"
NEW = "@dataclass(unsafe_hash=True)  # edgesnn loihi2 bridge: hashable default for Python 3.11\nclass ByteEncoder:"


def main() -> int:
    """Patch var_model.py in place if needed; exit non-zero with a message if it cannot be patched."""
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        print("patch_lava: lava-nc is not installed in this environment", file=sys.stderr)
        return 1
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "magma" / "compiler" / "var_model.py"
    text = path.read_text()
    if NEW not in text:
        if OLD not in text:
            print(f"patch_lava: {path}: ByteEncoder definition not found (not lava-nc 0.10.0?)", file=sys.stderr)
            return 1
        path.write_text(text.replace(OLD, NEW, 1))
    import lava.magma.compiler.var_model  # noqa: F401  (the check: this raised before the patch)

    return 0


if __name__ == "__main__":
    sys.exit(main())
