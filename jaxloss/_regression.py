"""Regression losses: l1_loss, mse_loss, smooth_l1_loss, huber_loss."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxloss import _checks, _subgradients
from jaxloss._jit import FloatOption, typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import Reduction


def _elementwise_inputs(
    loss: str,
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    reduction: Reduction,
    booleans: tuple[str, ...] = ("weight",),
) -> tuple[jax.Array, jax.Array, jax.Array | None, np.dtype]:
    """Checks and promotes the operands shared by the four losses; returns them and their promoted dtype.

    torch's type promotion: integer operands, and boolean ones named in `booleans` (where torch accepts
    them), take the floating operands' dtype. With no floating operand at all torch has no kernel (or
    returns an integer `l1_loss` sum); that raises `TypeError` here. The target broadcasts against the input
    with torch's UserWarning when their shapes differ; a `weight` must have exactly the input's shape.
    """
    _checks.check_reduction(loss, reduction)
    operands = dict(input=input, target=target, weight=weight)
    dtype = _checks.floating_dtype(loss, integers_to_float32=True, booleans=booleans, **operands)
    if not any(a is not None and jnp.issubdtype(jnp.result_type(a), jnp.floating) for a in operands.values()):
        raise TypeError(
            f"{loss}: `input` or `target` must be a floating-point array; got dtypes {jnp.result_type(input)} "
            f"and {jnp.result_type(target)}."
        )
    input, target = _checks.cast_for_computation(dtype, input, target)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    _checks.broadcast_shape(loss, input=input.shape, target=target.shape)
    _checks.warn_if_target_broadcasts(loss, input.shape, target.shape)
    if weight is not None:
        _checks.check_same_shape(loss, "input", input.shape, "weight", weight.shape)
    return input, target, weight, dtype


def _reduce_weighted(loss: jax.Array, weight: jax.Array | None, reduction: Reduction) -> jax.Array:
    """l1/mse's weighted reduction: ``'mean'`` is the weighted average ``sum(w * l) / sum(w)``."""
    if weight is None:
        return reduce(loss, reduction)
    weighted = weight * loss
    if reduction == "mean":
        return jnp.sum(weighted) / jnp.sum(jnp.broadcast_to(weight, weighted.shape))
    return reduce(weighted, reduction)


@typed_jit(static_argnames=("reduction",))
def l1_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean", weight: ArrayLike | None = None
) -> jax.Array:
    r"""Mean absolute error, ``|input - target|``, as `torch.nn.functional.l1_loss`.

    .. math:: \ell_i = w_i \, |x_i - y_i|

    The gradient at ``x == y`` is 0, as in torch.

    Args:
      input: predictions ``x``, any shape; floating or integer.
      target: ``y``, broadcastable to `input` (a different shape triggers torch's UserWarning); floating or
        integer. At least one of `input`, `target` and `weight` must be floating.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. With a `weight`, ``'mean'`` is the weighted average
        ``sum(w * l) / sum(w)``.
      weight: optional element weights ``w`` of exactly `input`'s shape; floating, integer or boolean.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the operands
      (torch's promotion: integer and boolean operands take the floating operands' dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import l1_loss
      >>> l1_loss(jnp.array([1., 2., 3.]), jnp.array([1., 2., 5.]))
      Array(0.6666667, dtype=float32)
    """
    input, target, weight, dtype = _elementwise_inputs("l1_loss", input, target, weight, reduction)
    return _reduce_weighted(_subgradients.abs(input - target), weight, reduction).astype(dtype)


@typed_jit(static_argnames=("reduction",))
def mse_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean", weight: ArrayLike | None = None
) -> jax.Array:
    r"""Mean squared error, ``(input - target)**2``, as `torch.nn.functional.mse_loss`.

    .. math:: \ell_i = w_i \, (x_i - y_i)^2

    Unlike `optax.squared_error`, this reduces (``'mean'`` by default) and has no factor 1/2.

    Args:
      input: predictions ``x``, any shape; floating, integer, or boolean without a
        `weight`.
      target: ``y``, broadcastable to `input` (a different shape triggers torch's UserWarning); as `input`.
        At least one of `input`, `target` and `weight` must be floating.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. With a `weight`, ``'mean'`` is the weighted average
        ``sum(w * l) / sum(w)``.
      weight: optional element weights ``w`` of exactly `input`'s shape; floating, integer or boolean.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the operands
      (torch's promotion: integer and boolean operands take the floating operands' dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import mse_loss
      >>> mse_loss(jnp.ones((2, 2)), jnp.array([[0., 1.], [2., 3.]]))
      Array(1.5, dtype=float32)
    """
    # Unweighted, torch's kernel promotes boolean operands; its weighted path subtracts them as they are,
    # which torch refuses.
    booleans = ("weight",) if weight is not None else ("input", "target")
    input, target, weight, dtype = _elementwise_inputs("mse_loss", input, target, weight, reduction, booleans)
    return _reduce_weighted(jnp.square(input - target), weight, reduction).astype(dtype)


# The float options, compiled as data (see `FloatOption`); NaN fails both checks, as in torch.
_BETA = FloatOption("beta", "non-negative", lambda beta: beta >= 0)
_DELTA = FloatOption("delta", "positive", lambda delta: delta > 0)


@jax.custom_jvp
def _huber(diff: jax.Array, delta: jax.Array) -> jax.Array:
    """``0.5 d²`` where ``|d| < δ``, else ``δ (|d| − 0.5 δ)``, with torch's derivative ``clip(d, −δ, δ)`` in d.

    The custom derivative is torch's hand-written one: finite at ``d = ±inf``, where autodiff of the two
    branches gives NaN (the unselected quadratic branch contributes ``0 · inf``). The derivative in δ is the
    exact ``|d| − δ`` outside the band (0 inside), infinite at ``d = ±inf``: skipped unless δ is differentiated.
    """
    abs_diff = jnp.abs(diff)
    return jnp.where(abs_diff < delta, 0.5 * jnp.square(diff), delta * (abs_diff - 0.5 * delta))


@functools.partial(_huber.defjvp, symbolic_zeros=True)
def _huber_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array | SymbolicZero, jax.Array | SymbolicZero]
) -> tuple[jax.Array, jax.Array]:
    diff, delta = primals
    abs_diff = jnp.abs(diff)
    d_diff = jnp.clip(diff, -delta, delta)
    d_delta = jnp.where(abs_diff < delta, 0, abs_diff - delta)
    return _huber(diff, delta), _subgradients.tangent_sum((d_diff, tangents[0]), (d_delta, tangents[1]))


@jax.custom_jvp
def _smooth_l1(diff: jax.Array, beta: jax.Array) -> jax.Array:
    """``0.5 d² / β`` where ``|d| < β``, else ``|d| − 0.5 β``; exactly ``|d|`` when β is 0 (torch's l1 fallback).

    torch's derivative in d: ``clip(d, −β, β) / β``, or l1's ``sign(d)`` (0 at 0 and at NaN) when β is 0. The
    derivative in β is the exact ``−0.5 min(1, d² / β²)``: at β = 0 the one-sided ``−0.5``, or 0 where d = 0
    (where the loss is 0 for every β).
    """
    l1 = beta == 0
    safe_beta = jnp.where(l1, 1, beta)  # the Huber branch, unselected, must not divide by zero
    return jnp.where(l1, jnp.abs(diff), _huber(diff, safe_beta) / safe_beta)


@functools.partial(_smooth_l1.defjvp, symbolic_zeros=True)
def _smooth_l1_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array | SymbolicZero, jax.Array | SymbolicZero]
) -> tuple[jax.Array, jax.Array]:
    diff, beta = primals
    l1 = beta == 0
    safe_beta = jnp.where(l1, 1, beta)
    # One rule rather than autodiff of a `where` between l1 and Huber, which would add both branches'
    # cotangents (turning torch's -0 gradients into +0). The coefficients are the derivatives times β (1 when
    # β = 0), and the tangent is divided by β last, so that reverse mode computes ``clip(d, −β, β) · (g / β)``
    # as autodiff of ``huber(d, β) / β`` does.
    d_diff = jnp.where(l1, _subgradients.torch_sign(diff), jnp.clip(diff, -beta, beta))
    d_beta = jnp.where(jnp.abs(diff) <= beta, -0.5 * jnp.square(diff) / safe_beta, -0.5 * safe_beta)
    tangent = _subgradients.tangent_sum((d_diff, tangents[0]), (d_beta, tangents[1])) / safe_beta
    return _smooth_l1(diff, beta), tangent


@typed_jit(static_argnames=("reduction",), float_options=(_BETA,))
def _smooth_l1_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction, beta: float | jax.Array
) -> tuple[jax.Array, _checks.Failures]:
    input, target, _, dtype = _elementwise_inputs("smooth_l1_loss", input, target, None, reduction, ("input", "target"))
    failures = _BETA.failures(beta)
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    target = _checks.nan_derivatives_if(failed, target)
    beta = _checks.nan_derivatives_if(failed, jnp.asarray(beta, input.dtype))
    loss = reduce(_smooth_l1(input - target, beta), reduction)
    return _checks.nan_where(failed, loss).astype(dtype), failures


def smooth_l1_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean", beta: float | jax.Array = 1.0
) -> jax.Array:
    r"""Smooth L1 loss, as `torch.nn.functional.smooth_l1_loss`.

    .. math::
      \ell_i = \begin{cases} 0.5 (x_i - y_i)^2 / \beta & |x_i - y_i| < \beta \\
                             |x_i - y_i| - 0.5 \beta & \text{otherwise} \end{cases}

    ``beta = 0`` is exactly `l1_loss`. The gradient is ``d / β`` inside the band and ``sign(d)`` outside, which
    agree at ``|d| = β``; it is 0 at ``d = 0``. `optax.huber_loss` is ``β ·`` this loss (with ``delta = β``).

    Args:
      input: predictions ``x``, any shape; floating, integer or boolean.
      target: ``y``, broadcastable to `input` (a different shape triggers torch's UserWarning); floating,
        integer or boolean. At least one of `input` and `target` must be floating.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
      beta: the width ``β >= 0`` of the quadratic band: a Python number or a real JAX scalar, which may be
        traced, batched or differentiated (the derivative is the exact one, ``-0.5 min(1, d² / β²)``). A
        traced value outside the range gives a NaN loss and NaN gradients, as the value checks do.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the operands
      (torch's promotion: integer and boolean operands take the floating operand's dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import smooth_l1_loss
      >>> smooth_l1_loss(jnp.ones((2, 2)), jnp.array([[0., 1.], [2., 3.]]))
      Array(0.625, dtype=float32)
    """
    loss, failures = _smooth_l1_loss(input, target, reduction, beta)
    return _checks.raise_failed("smooth_l1_loss", loss, failures)


@typed_jit(static_argnames=("reduction",), float_options=(_DELTA,))
def _huber_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction, delta: float | jax.Array, weight: ArrayLike | None
) -> tuple[jax.Array, _checks.Failures]:
    # torch's kernel computes in the promoted dtype of `input` and `target` but writes into an array of
    # `input`'s dtype (so an integer `input` fails), which the weighting then promotes: the result's dtype is
    # that of `input` and `weight`, never `target`'s.
    _checks.floating_dtype("huber_loss", input=input)
    dtype = _checks.floating_dtype(
        "huber_loss", integers_to_float32=True, booleans=("weight",), input=input, weight=weight
    )
    booleans = ("target", "weight")
    input, target, weight, _ = _elementwise_inputs("huber_loss", input, target, weight, reduction, booleans)
    failures = _DELTA.failures(delta)
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    target = _checks.nan_derivatives_if(failed, target)
    weight = _checks.nan_derivatives_if(failed, weight)
    delta = _checks.nan_derivatives_if(failed, jnp.asarray(delta, input.dtype))
    loss = _huber(input - target, delta)
    if weight is not None:
        loss = weight * loss
    return _checks.nan_where(failed, reduce(loss, reduction)).astype(dtype), failures


def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: Reduction = "mean",
    delta: float | jax.Array = 1.0,
    weight: ArrayLike | None = None,
) -> jax.Array:
    r"""Huber loss, as `torch.nn.functional.huber_loss`.

    .. math::
      \ell_i = w_i \begin{cases} 0.5 (x_i - y_i)^2 & |x_i - y_i| < \delta \\
                                 \delta (|x_i - y_i| - 0.5 \delta) & \text{otherwise} \end{cases}

    Equal to ``delta * smooth_l1_loss(..., beta=delta)`` and, elementwise, to `optax.huber_loss`.

    Args:
      input: predictions ``x``, any shape, floating.
      target: ``y``, broadcastable to `input` (a different shape triggers torch's UserWarning); floating,
        integer or boolean.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. With a `weight`, ``'mean'`` is ``sum(w * l) / numel``,
        not a weighted average (unlike `l1_loss` and `mse_loss`; torch does the same).
      delta: the threshold ``δ > 0`` between the quadratic and linear parts: a Python number or a real JAX
        scalar, which may be traced, batched or differentiated (the derivative is the exact one, 0 inside
        the band and ``|d| - δ`` outside). A traced value outside the range gives a NaN loss and NaN
        gradients, as the value checks do.
      weight: optional element weights ``w`` of exactly `input`'s shape; floating, integer or boolean.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of `input` and
      `weight`, as in torch, whose kernel casts to `input`'s dtype: a `target` of a wider dtype is used at its
      own precision but does not widen the result (float32 for a float32 `input` and a float64 `target`).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import huber_loss
      >>> huber_loss(jnp.array([0., 3.]), jnp.array([0.5, 0.]), delta=2.0)
      Array(2.0625, dtype=float32)
    """
    loss, failures = _huber_loss(input, target, reduction, delta, weight)
    return _checks.raise_failed("huber_loss", loss, failures)
