"""Gradient-checkpointing schemes as data: names, chunk levels, recomputation (no JAX here).

:mod:`tools.train.timeloop` runs them; :mod:`tools.train.memplan` predicts their memory and
time; the IPU bridge's training plans (``firmware_bridges/ipu``) use both without importing JAX.
"""

from __future__ import annotations

import dataclasses

from edgesnn.errors import OptionError

SCHEMES = ("none", "standard", "hierarchical", "remote", "double")
REMOTE_STORES = ("host", "mmap")
#: How many chunk sizes each scheme takes (outer first).
CHUNK_LEVELS = {"none": 0, "standard": 1, "remote": 1, "hierarchical": 2, "double": 2}
#: Extra forward passes of each scheme's backward pass (recomputation), for the planner.
RECOMPUTE = {"none": 0, "standard": 1, "remote": 1, "hierarchical": 2, "double": 2}


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """A checkpointing scheme with its chunk sizes in steps (outer first); see :mod:`tools.train.timeloop`.

    ``remote``: where remote chunk states live, ``"host"`` (a numpy array) or ``"mmap"`` (a
    memory-mapped file in ``directory``, default the system's temporary directory).
    """

    scheme: str = "none"
    chunks: tuple[int, ...] = ()
    remote: str = "host"
    directory: str | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise OptionError(f"expected one of {', '.join(SCHEMES)}, got {self.scheme!r}", path="scheme")
        object.__setattr__(self, "chunks", tuple(self.chunks))
        want = CHUNK_LEVELS[self.scheme]
        if len(self.chunks) != want or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                                           for k in self.chunks):  # fmt: skip
            what = "no chunk sizes" if want == 0 else f"{want} chunk size(s) >= 1 in steps, outer first"
            raise OptionError(f"{self.scheme} takes {what}, got {list(self.chunks)}", path="chunks")
        if want == 2 and self.chunks[1] > self.chunks[0]:
            raise OptionError(f"the inner chunk must not exceed the outer one, got {list(self.chunks)}", path="chunks")
        if self.remote not in REMOTE_STORES:
            raise OptionError(f"expected one of {', '.join(REMOTE_STORES)}, got {self.remote!r}", path="remote")

    @property
    def is_remote(self) -> bool:
        """Whether chunk states leave the compiled computation."""
        return self.scheme in ("remote", "double")
