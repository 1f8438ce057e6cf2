"""Build hook for the optional C step kernels; all other metadata lives in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

_CKERNELS_SOURCE = Path("edgesnn/engine/_ckernels.c")


def _extensions() -> list[Extension]:
    """The C kernels, when their source is present; the engine falls back to numpy without them."""
    if not (Path(__file__).parent / _CKERNELS_SOURCE).is_file():
        return []
    return [
        Extension(
            "edgesnn.engine._ckernels",
            sources=[_CKERNELS_SOURCE.as_posix()],
            # -fno-math-errno lets the compiler inline maths calls. -ffast-math is left out because it
            # reorders float sums and assumes no NaN/Inf; -march=native because the build must run on
            # any CPU of its architecture, not only the one that compiled it.
            extra_compile_args=["-O3", "-std=c99", "-fno-math-errno"],
            # A machine without a compiler or Python headers still installs; the runtime then uses numpy.
            optional=True,
        )
    ]


setup(ext_modules=_extensions())
