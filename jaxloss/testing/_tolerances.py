"""The dtypes a parity check runs in, and how close jaxloss's answer must be to torch's in each."""

import dataclasses
from typing import Literal, TypeAlias

import jax.numpy as jnp
import numpy as np

DTypeName: TypeAlias = Literal["float32", "float64", "float16", "bfloat16"]
"""The floating dtype a parity check casts the floating arguments to.

``'float16'`` and ``'bfloat16'`` check a computation that returns 16-bit results: the JAX function gets 16-bit
arguments, torch gets the same (rounded) values in float32, the judge of what the 16-bit answer should be close to.
"""

Mode: TypeAlias = Literal["eager", "jit"]
"""How the JAX function runs: called as it is, or inside `jax.jit` with every array argument traced."""

DTYPE_NAMES: tuple[DTypeName, ...] = ("float32", "float64", "float16", "bfloat16")
MODES: tuple[Mode, ...] = ("eager", "jit")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far an element of jaxloss's answer may be from torch's: ``|jax - torch| <= atol + rtol * |torch|``.

    NaN must meet NaN and an infinity the same infinity, whatever the tolerance, as in
    ``torch.testing.assert_close(..., equal_nan=True)``. Integer and boolean results must be equal.

    Attributes:
      rtol: the relative tolerance.
      atol: the absolute tolerance.
    """

    rtol: float
    atol: float

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"Tolerance: `{name}` must be a number >= 0, got {value!r}")

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"


DEFAULT_TOLERANCES: dict[DTypeName, Tolerance] = {
    # float32: a few units in the last place of sums that torch and XLA add in different orders.
    "float32": Tolerance(rtol=2e-5, atol=2e-6),
    "float64": Tolerance(rtol=1e-10, atol=1e-12),
    # 16-bit results against torch's float32 answer on the same rounded inputs: about 2 ulps of bfloat16.
    "float16": Tolerance(rtol=2e-2, atol=2e-2),
    "bfloat16": Tolerance(rtol=2e-2, atol=2e-2),
}


def numpy_dtype(name: DTypeName) -> np.dtype:
    """The NumPy dtype of `name` (bfloat16 from ml_dtypes, through JAX)."""
    return np.dtype(jnp.bfloat16) if name == "bfloat16" else np.dtype(name)


def is_16_bit(name: DTypeName) -> bool:
    """Whether torch judges `name` in float32 (see `DTypeName`)."""
    return name in ("float16", "bfloat16")


def check_dtype_name(name: str, argument: str = "dtype") -> DTypeName:
    """`name`, after checking that it is one of `DTYPE_NAMES`."""
    if name not in DTYPE_NAMES:
        raise ValueError(f"`{argument}` must be one of {DTYPE_NAMES}, got {name!r}")
    return name


def check_mode(mode: str, argument: str = "mode") -> Mode:
    """`mode`, after checking that it is one of `MODES`."""
    if mode not in MODES:
        raise ValueError(f"`{argument}` must be one of {MODES}, got {mode!r}")
    return mode
