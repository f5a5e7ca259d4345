"""The suite's side of the parity grid (`jaxloss.parity`): pytest parameters for its cases, and the checks.

Every check goes through `jaxloss.testing`, the same code that users' tests and ``python -m jaxloss.parity`` run.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import pytest

from jaxloss.parity import Case, cases, grid
from jaxloss.testing import DTypeName, Mode

__all__ = ["DTYPES", "MODES", "Case", "cases", "check_raises", "grid", "runs"]

DTYPES: tuple[DTypeName, ...] = ("float32", "float64")
MODES: tuple[Mode, ...] = ("eager", "jit")


def runs(grid_cases: Iterable[Case]) -> list[Any]:
    """A `pytest.param` ``(case, dtype, mode)`` for every dtype and mode of each case, with id
    ``{case}-{dtype}-{mode}``: parametrize a test ``"case, dtype, mode"`` with it and call ``case.check``."""
    return [
        pytest.param(case, dtype, mode, id=f"{case}-{dtype}-{mode}")
        for case in grid_cases
        for dtype in case.dtypes
        for mode in case.modes
    ]


def check_raises(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    """Asserts that `call` raises `error` matching `match`, both eagerly and when traced by `jax.jit` (static
    checks run while tracing)."""
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(error, match=match):
        jax.jit(call)()
