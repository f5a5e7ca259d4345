"""Parity testing against torch: does a JAX function compute torch's values and gradients?

jaxloss proves its own losses with these functions (its test suite and ``python -m jaxloss.parity``); they work
the same on a user's code: a model's forward, a loss composed of several, a custom layer. `assert_parity` runs a
JAX function and a torch function on the same arguments, in float32 and float64 (and float16/bfloat16 against
torch's float32), eagerly and under `jax.jit`, compares their outputs and their gradients (a VJP with a random
cotangent, for the arguments named), and raises a `ParityError` that says which output or gradient differs,
where, by how much, and where NaN or an infinity appears on one side only. `compare_parity` returns the same
comparisons without raising. The conversion helpers move arrays and torch state dicts between the two.

The comparisons need torch (2.13 or 2.14), imported when first used; the conversions need it only for tensors,
and ``import jaxloss`` never imports it.

Example, in a user's pytest::

    import numpy as np
    import torch
    import jaxloss.functional as F
    from jaxloss.testing import assert_parity

    def test_my_loss_matches_torch():
        x, y = np.random.default_rng(0).normal(size=(2, 8, 3))
        assert_parity(
            lambda input, target: F.l1_loss(input, target) + 0.5 * F.mse_loss(input, target),
            lambda input, target: torch.nn.functional.l1_loss(input, target)
            + 0.5 * torch.nn.functional.mse_loss(input, target),
            {"input": x, "target": y},
            grad=["input", "target"],
        )
"""

from jaxloss.testing import _tolerances
from jaxloss.testing._comparison import Comparison as Comparison
from jaxloss.testing._convert import conv_kernel_from_torch as conv_kernel_from_torch
from jaxloss.testing._convert import conv_kernel_to_torch as conv_kernel_to_torch
from jaxloss.testing._convert import linear_kernel_from_torch as linear_kernel_from_torch
from jaxloss.testing._convert import linear_kernel_to_torch as linear_kernel_to_torch
from jaxloss.testing._convert import state_dict_to_flax as state_dict_to_flax
from jaxloss.testing._convert import to_jax as to_jax
from jaxloss.testing._convert import to_numpy as to_numpy
from jaxloss.testing._convert import to_torch as to_torch
from jaxloss.testing._parity import ParityError as ParityError
from jaxloss.testing._parity import assert_parity as assert_parity
from jaxloss.testing._parity import compare_parity as compare_parity
from jaxloss.testing._tolerances import DTypeName as DTypeName
from jaxloss.testing._tolerances import Mode as Mode
from jaxloss.testing._tolerances import Tolerance as Tolerance

# Data are assigned here, with their docstrings, so that the API reference finds them.
DEFAULT_TOLERANCES = _tolerances.DEFAULT_TOLERANCES
"""The `Tolerance` of each dtype: the one every jaxloss loss meets against torch (float32: rtol 2e-5, atol 2e-6;
float64: rtol 1e-10, atol 1e-12; float16 and bfloat16 against torch's float32: rtol and atol 2e-2)."""

DTYPE_NAMES = _tolerances.DTYPE_NAMES
"""Every `DTypeName`: ``('float32', 'float64', 'float16', 'bfloat16')``."""

MODES = _tolerances.MODES
"""Every `Mode`: ``('eager', 'jit')``."""

__all__ = [
    "DEFAULT_TOLERANCES",
    "DTYPE_NAMES",
    "MODES",
    "Comparison",
    "DTypeName",
    "Mode",
    "ParityError",
    "Tolerance",
    "assert_parity",
    "compare_parity",
    "conv_kernel_from_torch",
    "conv_kernel_to_torch",
    "linear_kernel_from_torch",
    "linear_kernel_to_torch",
    "state_dict_to_flax",
    "to_jax",
    "to_numpy",
    "to_torch",
]
