"""The `reduction` step every loss ends with."""

import jax
import jax.numpy as jnp

from jaxloss._typing import Reduction


def reduce(loss: jax.Array, reduction: Reduction) -> jax.Array:
    """Reduces element losses as torch does.

    Args:
      loss: element losses, any shape.
      reduction: ``'none'`` returns `loss`; ``'sum'`` its sum (0 when empty); ``'mean'`` its mean (NaN when
        empty).

    Returns:
      `loss` for ``'none'``, else a scalar.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    return jnp.mean(loss)
