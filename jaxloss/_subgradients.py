"""Elementary functions with torch's derivatives where JAX's autodiff picks another one.

At a kink a function has many valid subgradients, and torch's autograd formulas choose particular ones. Losses
built from these helpers therefore give `jax.grad` results equal to `torch.autograd`'s at those points too.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def torch_sign(x: jax.Array) -> jax.Array:
    """torch's `sgn` of a real tensor: like `jnp.sign`, but 0 (not NaN) at NaN."""
    return jnp.where(jnp.isnan(x), 0, jnp.sign(x))


@jax.custom_jvp
def abs(x: jax.Array) -> jax.Array:
    """``|x|`` with torch's derivative ``sgn(x)``: 0 at ``x = 0`` (JAX's `jnp.abs` gives 1 there) and at NaN."""
    return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), torch_sign(x) * dx


def clamp_min(x: jax.Array, minimum: float) -> jax.Array:
    """``max(x, minimum)`` with torch's `clamp_min` derivative: 1 where ``x >= minimum``, ties included, and 0
    elsewhere, NaN included; NaN values propagate.

    (`jnp.maximum` splits the derivative in half at a tie; `jax.nn.relu` gives 0 there.)
    """
    below_or_nan = jnp.where(jnp.isnan(x), jax.lax.stop_gradient(x), minimum)
    return jnp.where(x >= minimum, x, below_or_nan)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def vector_norm(x: jax.Array, p: float) -> jax.Array:
    r"""The p-norm of `x` over its last axis, with torch's values and `norm` backward (`norm_backward`).

    Values: ``p = 0`` counts the non-zero entries, ``p = ±inf`` is the largest/smallest ``|x_i|``, any other ``p``
    is ``(Σ |x_i|^p)^(1/p)``, computed without rescaling as torch does (so ``p = 2`` overflows to ``inf`` and
    underflows to 0 where torch's does; a negative ``p`` gives 0 when an entry is 0).

    Gradients, torch's per ``p`` (plain autodiff would give NaN at ``x = 0`` for ``p > 1``):

    * ``p = 0``: 0 (torch has no gradient);
    * ``p = 1``: ``sign(x)``, 0 at 0;
    * ``p = 2``: ``x / ‖x‖``, 0 when ``‖x‖ = 0``;
    * ``p = ±inf``: ``sign(x_i) / k`` on the ``k`` entries whose ``|x_i|`` equals the norm (ties share equally),
      0 elsewhere;
    * ``p < 1``: ``sign(x) |x|^(p-1) ‖x‖^(1-p)``, 0 where ``x_i = 0``;
    * ``p > 1``: ``sign(x) |x|^(p-1) / ‖x‖^(p-1)``, 0 when ``‖x‖ = 0``.

    ``sign`` is 0 at NaN, as torch's.

    Args:
      x: at least 1-D, floating.
      p: the order, a Python float.

    Returns:
      The norms, of shape ``x.shape[:-1]``.
    """
    if p == 0:
        return jnp.sum(x != 0, axis=-1).astype(x.dtype)
    if p == 1:
        return jnp.sum(jnp.abs(x), axis=-1)
    if p == 2:
        return jnp.sqrt(jnp.sum(x * x, axis=-1))
    if p == math.inf:
        return jnp.max(jnp.abs(x), axis=-1)
    if p == -math.inf:
        return jnp.min(jnp.abs(x), axis=-1)
    return jnp.sum(jnp.abs(x) ** p, axis=-1) ** (1 / p)


@vector_norm.defjvp
def _vector_norm_jvp(p: float, primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    # Each tangent below is linear in dx, so that JAX's transpose of it is torch's backward formula, with the
    # same masks and the same order of the scaling (the cotangent is divided/multiplied by the norm term first).
    (x,), (dx,) = primals, tangents
    norm = vector_norm(x, p)
    sign = torch_sign(x)
    if p == 0:
        return norm, jnp.zeros_like(norm)
    if p == 1:
        return norm, jnp.sum(sign * dx, axis=-1)
    if p == 2:
        zero = norm[..., None] == 0
        return norm, jnp.sum(jnp.where(zero, 0, x / jnp.where(zero, 1, norm[..., None])) * dx, axis=-1)
    if math.isinf(p):
        # torch's mask of the arg-max (or arg-min): |x_i| equal to the norm, or NaN.
        mask = (jnp.abs(x) == norm[..., None]) | jnp.isnan(x)
        return norm, jnp.sum(sign * mask * dx, axis=-1) / jnp.sum(mask, axis=-1)
    if p < 1:
        scaled = sign * jnp.where(x == 0, 0, jnp.abs(x) ** (p - 1))
        return norm, jnp.sum(scaled * dx, axis=-1) * norm ** (1 - p)
    scaled = sign * jnp.abs(x) ** (p - 1) if p < 2 else x * jnp.abs(x) ** (p - 2)
    zero = norm == 0
    return norm, jnp.where(zero, 0, jnp.sum(scaled * dx, axis=-1) / jnp.where(zero, 1, norm ** (p - 1)))


def tangent_sum(*pairs: tuple[jax.Array, jax.Array | SymbolicZero]) -> jax.Array:
    """``Σ coefficient · tangent`` over the (coefficient, tangent) pairs whose tangent is not a symbolic zero.

    JVP rules written with it are linear in the tangents, so JAX's transpose of them multiplies the cotangent by the
    same coefficients: torch's backward formulas. Skipping symbolic zeros matters: a coefficient can be infinite
    (``-logit(0)``), and ``inf * 0`` would poison the gradient of an argument that is not even differentiated.
    """
    terms = [coefficient * tangent for coefficient, tangent in pairs if not isinstance(tangent, SymbolicZero)]
    return functools.reduce(jnp.add, terms)
