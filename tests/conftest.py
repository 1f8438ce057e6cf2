"""Suite-wide strictness: numpy float errors raise instead of warning or passing silently."""

from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _numpy_float_errors_raise() -> Iterator[None]:
    """Make overflow, division by zero and invalid operations raise; underflow to zero is expected in decays."""
    with np.errstate(all="raise", under="ignore"):
        yield
