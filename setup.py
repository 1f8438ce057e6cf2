"""Build hook for the optional C kernels; all other metadata lives in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

# Module name -> C source. Each is optional: without a compiler the package still installs and the
# code that would use a kernel runs its numpy reference path instead.
_KERNELS = {
    "edgesnn.engine._ckernels": Path("edgesnn/engine/_ckernels.c"),
    "edgesnn.engine._tkernels": Path("edgesnn/engine/_tkernels.c"),
    "edgesnn.events._evtkernels": Path("edgesnn/events/_evtkernels.c"),
    "edgesnn.events._histkernels": Path("edgesnn/events/_histkernels.c"),
}


def _extensions() -> list[Extension]:
    """The C kernels whose sources are present."""
    here = Path(__file__).parent
    return [
        Extension(
            name,
            sources=[src.as_posix()],
            # -fno-math-errno lets the compiler inline maths calls. -fno-trapping-math lets it turn
            # a compare-and-select into vector masks (a subtract-reset LIF loop was scalar without it,
            # 4x slower): no value changes, only FP exception flags, which nothing reads. -ffast-math
            # is left out because it reorders float sums and assumes no NaN/Inf; -march=native
            # because the build must run on any CPU of its architecture, not only the one that
            # compiled it (the hot engine loops carry an AVX2 clone chosen at load instead).
            extra_compile_args=["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math"],
            optional=True,
        )
        for name, src in _KERNELS.items()
        if (here / src).is_file()
    ]


setup(ext_modules=_extensions())
