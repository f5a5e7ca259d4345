"""Elementary functions with torch's derivatives where JAX's autodiff picks another one.

At a kink a function has many valid subgradients, and torch's autograd formulas choose particular ones. Losses
built from these helpers therefore give `jax.grad` results equal to `torch.autograd`'s at those points too.
"""

import jax
import jax.numpy as jnp


@jax.custom_jvp
def abs(x: jax.Array) -> jax.Array:  # noqa: A001 - mirrors torch.abs
    """``|x|`` with torch's derivative ``sign(x)``: 0 at ``x = 0`` (JAX's `jnp.abs` gives 1 there)."""
    return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * dx


def clamp_min(x: jax.Array, minimum) -> jax.Array:
    """``max(x, minimum)`` with torch's `clamp_min` derivative: 1 where ``x >= minimum``, ties included.

    (`jnp.maximum` splits the derivative in half at a tie; `jax.nn.relu` gives 0 there.)
    """
    return jnp.where(x < minimum, minimum, x)  # NaN < minimum is False: NaN propagates, as in torch
