"""Binary and multi-label losses: binary_cross_entropy, binary_cross_entropy_with_logits, soft_margin_loss,
multilabel_soft_margin_loss."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxloss import _checks, _subgradients
from jaxloss._jit import typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import Reduction

# torch's `EPSILON` in its binary_cross_entropy backward (ATen Loss.cpp) is a C++ `float`: in float64 the
# denominator floor is float32(1e-12) = 9.99999996e-13, which gives torch's -1000000003995.8 at x = 0, t = 1.
_BCE_EPSILON = np.float32(1e-12)


@jax.custom_jvp
def _log_sigmoid(x: jax.Array) -> jax.Array:
    """``log σ(x) = min(x, 0) − log1p(exp(−|x|))``, stable for any x, with derivative ``σ(−x)``.

    Equal to `jax.nn.log_sigmoid`, but written out: on XLA:CPU that version (a `logaddexp` with NaN handling)
    does not fuse into the loss's reduction and makes binary_cross_entropy_with_logits 2-3x slower, forward
    and backward (`benchmarks/losses.py`).
    """
    return jnp.minimum(x, 0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


_log_sigmoid.defjvps(lambda tangent, _, x: tangent * jax.nn.sigmoid(-x))


@jax.custom_jvp
def _bce_elements(input: jax.Array, target: jax.Array) -> jax.Array:
    """torch's CPU kernel: ``(t - 1) max(log1p(-x), -100) - t max(log x, -100)``, each log clamped at -100."""
    return (target - 1) * jnp.maximum(jnp.log1p(-input), -100) - target * jnp.maximum(jnp.log(input), -100)


@functools.partial(_bce_elements.defjvp, symbolic_zeros=True)
def _bce_elements_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array | SymbolicZero, jax.Array | SymbolicZero]
) -> tuple[jax.Array, jax.Array]:
    input, target = primals
    # torch's binary_cross_entropy_backward: the clamp of the logs plays no part; the denominator is floored
    # instead, so the gradient stays finite (about ∓1e12) at x = 0 and x = 1.
    d_input = (input - target) / jnp.maximum((1 - input) * input, _BCE_EPSILON.astype(input.dtype))
    # torch's binary_cross_entropy_target_backward: -logit(x), not the clamped logs (±inf at x = 0 and 1).
    d_target = -jnp.log(input / (1 - input))
    return _bce_elements(input, target), _subgradients.tangent_sum((d_input, tangents[0]), (d_target, tangents[1]))


@typed_jit(static_argnames=("reduction",))
def _binary_cross_entropy(
    input: ArrayLike, target: ArrayLike, weight: ArrayLike | None, reduction: Reduction
) -> tuple[jax.Array, _checks.Failures]:
    loss_name = "binary_cross_entropy"
    _checks.check_reduction(loss_name, reduction)
    dtype = _checks.floating_dtype(loss_name, input=input)
    _checks.check_same_dtype(loss_name, "input", input, "target", target)
    _checks.floating_dtype(
        loss_name, integers_to_float32=True, booleans=("weight",), weight=weight
    )  # cast to `input`'s
    input, target = _checks.cast_for_computation(dtype, input, target)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    _checks.check_same_shape(loss_name, "input", input.shape, "target", target.shape)
    if weight is not None:
        _checks.check_broadcasts_to(loss_name, "weight", weight.shape, "target", target.shape)
    # NaN fails both checks, as in torch.
    bad_input = ~((input >= 0) & (input <= 1))
    bad_target = ~((target >= 0) & (target <= 1))
    failures = {
        "all elements of `input` must lie in [0, 1] (NaN fails too)": jnp.any(bad_input),
        "all elements of `target` must lie in [0, 1] (NaN fails too)": jnp.any(bad_target),
    }
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    target = _checks.nan_derivatives_if(failed, target)
    weight = _checks.nan_derivatives_if(failed, weight)
    loss = _checks.nan_where(bad_input | bad_target, _bce_elements(input, target))
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction).astype(dtype), failures


def binary_cross_entropy(
    input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, reduction: Reduction = "mean"
) -> jax.Array:
    r"""Binary cross-entropy between probabilities and targets, as `torch.nn.functional.binary_cross_entropy`.

    .. math:: \ell_i = -w_i \left[ t_i \max(\log x_i, -100) + (1 - t_i) \max(\log(1 - x_i), -100) \right]

    Each log is clamped at -100, as in torch, so one element costs at most ``100 · w``. Gradients are torch's
    hand-written ones rather than those of the clamped formula:

    * w.r.t. `input`: ``w (x - t) / max(x (1 - x), ε)`` with ``ε = float32(1e-12)`` (about ∓1e12 at ``x = 0``
      or 1, never infinite);
    * w.r.t. `target`: ``-w logit(x) = w log((1 - x) / x)``, unclamped: ``+inf`` at ``x = 0``, ``-inf`` at 1;
    * w.r.t. `weight`: the unweighted element loss (torch refuses to differentiate `weight`).

    optax has no probability-space version; on logits, prefer `binary_cross_entropy_with_logits`.

    Value checks: every `input` and `target` element must lie in [0, 1] (NaN fails). Eagerly (including eager
    `jax.grad`) a failure raises `ValueError`, as torch does; under `jax.jit`/`jax.vmap` the values cannot be
    checked and the offending elements are NaN instead (so is any reduction over them, and every element of
    the gradients).

    Args:
      input: probabilities ``x``, any shape, floating.
      target: ``t``, the same shape and dtype as `input` (torch neither broadcasts nor promotes here).
      weight: optional weights ``w`` that broadcast to `target`'s shape without enlarging it, e.g. ``(C,)``
        for ``(N, C)``; cast to `input`'s dtype.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'mean'`` is the mean of ``w · ℓ`` over all elements,
        not divided by ``Σ w``.

    Returns:
      The element losses (`input`'s shape) for ``'none'``, else a scalar; in `input`'s dtype.

    Raises:
      ValueError: a bad option or shape; eagerly, an element outside [0, 1].
      TypeError: a non-floating `input`, or a `target` of another dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import binary_cross_entropy
      >>> binary_cross_entropy(jnp.array([0.9, 0.2, 0.0]), jnp.array([1.0, 0.0, 1.0]), reduction="none")
      Array([  0.10536055,   0.22314355, 100.        ], dtype=float32)
    """
    loss, failures = _binary_cross_entropy(input, target, weight, reduction)
    return _checks.raise_failed("binary_cross_entropy", loss, failures)


@jax.custom_jvp
def _logits_elements(input: jax.Array, target: jax.Array, pos_weight: jax.Array | None) -> jax.Array:
    """torch's evaluation, ``(1 - t) x - log σ(x) · (1 + (p - 1) t)``: stable for large |x|, NaN where torch's is
    (``x = -inf``; ``x = +inf`` with ``t = 1``). `pos_weight` is None or has `input`'s shape."""
    log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    return (1 - target) * input - _log_sigmoid(input) * log_weight


@functools.partial(_logits_elements.defjvp, symbolic_zeros=True)
def _logits_elements_jvp(
    primals: tuple[jax.Array, jax.Array, jax.Array | None],
    tangents: tuple[jax.Array | SymbolicZero, ...],
) -> tuple[jax.Array, jax.Array]:
    # torch's binary_cross_entropy_with_logits_backward and _target_backward: finite input gradients even where
    # the value is NaN, and the target gradient of the `pos_weight` branch written with log-sigmoids.
    input, target, pos_weight = primals
    value = _logits_elements(input, target, pos_weight)
    if pos_weight is None:
        d_input = jax.nn.sigmoid(input) - target
        d_target = -input
        return value, _subgradients.tangent_sum((d_input, tangents[0]), (d_target, tangents[1]))
    weighted_target = pos_weight * target
    d_input = (weighted_target + 1 - target) * jax.nn.sigmoid(input) - weighted_target
    d_target = _log_sigmoid(-input) - _log_sigmoid(input) * pos_weight
    d_pos_weight = -target * _log_sigmoid(input)  # not differentiable in torch: the exact derivative
    return value, _subgradients.tangent_sum(
        (d_input, tangents[0]), (d_target, tangents[1]), (d_pos_weight, tangents[2])
    )


@typed_jit(static_argnames=("reduction",))
def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
    r"""Binary cross-entropy on logits, as `torch.nn.functional.binary_cross_entropy_with_logits`.

    .. math::
      \ell_i = -w_i \left[ p_c \, t_i \log \sigma(x_i) + (1 - t_i) \log \sigma(-x_i) \right]
             = w_i \left[ (1 - t_i) x_i - (1 + (p_c - 1) t_i) \log \sigma(x_i) \right]

    Evaluated as torch does, in the second form: logits of ±200 or ±1e9 cost ``|x|`` rather than ``inf``;
    like torch, ``x = -inf`` gives NaN, and so does ``x = +inf`` with ``t = 1`` (``0 · inf``). The target is
    not range-checked: any real ``t`` is accepted.

    Gradients are torch's hand-written ones: ``w (σ(x) - t)`` w.r.t. `input` (with `pos_weight`,
    ``w ((p t + 1 - t) σ(x) - p t)``), finite even where the value is NaN; ``-w x`` w.r.t. `target` (with
    `pos_weight`, ``w (log σ(-x) - p log σ(x))``). `weight` and `pos_weight`, which torch refuses to
    differentiate, get their exact derivatives: the unweighted element loss, and ``-w t log σ(x)``.

    With ``reduction='none'`` and no `weight` or `pos_weight`, this equals `optax.sigmoid_binary_cross_entropy`,
    which is elementwise only: it neither reduces nor takes weights or a `pos_weight`.

    Args:
      input: logits ``x``, any shape, floating.
      target: ``t``, the same shape as `input`, floating (integer targets are refused, as by torch).
      weight: optional weights ``w`` that broadcast to `input`'s shape without enlarging it.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'mean'`` is the mean of ``w · ℓ`` over all elements.
      pos_weight: optional weights ``p`` of the positive term that broadcast to `input`'s shape (from the
        right) without enlarging it; typically ``(C,)``, one per class of the last axis.

    Returns:
      The element losses (`input`'s shape) for ``'none'``, else a scalar; in `target`'s dtype, as in torch
      (whose in-place arithmetic casts to it: a float64 `input` with a float32 `target` gives float32).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import binary_cross_entropy_with_logits
      >>> binary_cross_entropy_with_logits(jnp.array([2.0, -1.0, 1e9]), jnp.array([1.0, 0.0, 0.0]),
      ...                                  reduction="none")
      Array([1.2692800e-01, 3.1326175e-01, 1.0000000e+09], dtype=float32)
    """
    loss_name = "binary_cross_entropy_with_logits"
    _checks.check_reduction(loss_name, reduction)
    dtype = _checks.floating_dtype(loss_name, target=target)
    compute_dtype = _checks.floating_dtype(loss_name, input=input, target=target)
    _checks.floating_dtype(
        loss_name, integers_to_float32=True, booleans=("weight",), weight=weight, pos_weight=pos_weight
    )
    input, target = _checks.cast_for_computation(compute_dtype, input, target)
    weight = _checks.cast_optional_for_computation(compute_dtype, weight)
    pos_weight = _checks.cast_optional_for_computation(compute_dtype, pos_weight)
    _checks.check_same_shape(loss_name, "input", input.shape, "target", target.shape)
    for name, operand in (("weight", weight), ("pos_weight", pos_weight)):
        if operand is not None:
            _checks.check_broadcasts_to(loss_name, name, operand.shape, "input", input.shape)
    if pos_weight is not None:
        pos_weight = jnp.broadcast_to(pos_weight, input.shape)
    loss = _logits_elements(input, target, pos_weight)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction).astype(dtype)


@typed_jit(static_argnames=("reduction",))
def soft_margin_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> jax.Array:
    r"""Two-class logistic loss on ±1 labels, as `torch.nn.functional.soft_margin_loss`.

    .. math:: \ell_i = \log(1 + \exp(-t_i x_i))

    averaged over all elements for ``'mean'``.

    Deviation from torch: evaluated as ``softplus(-t x)``, which stays finite. torch computes
    ``log1p(exp(-t x))`` literally, which overflows to ``inf`` (gradient NaN) once ``-t x`` exceeds about 88 in
    float32 (709 in float64); there this returns ``-t x`` (gradient ``-t``), the exact value. Elsewhere the two
    agree. The input gradient is ``-t σ(-t x)``. torch refuses to differentiate `target`; here it gets the exact
    derivative ``-x σ(-t x)``.

    Args:
      input: ``x``, any shape, floating.
      target: ``t`` (conventionally ±1), floating or integer, broadcastable to `input`'s shape without enlarging
        it (torch's rule: the result keeps `input`'s shape).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The element losses (`input`'s shape) for ``'none'``, else a scalar; in `input`'s dtype, as in torch.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import soft_margin_loss
      >>> soft_margin_loss(jnp.array([2.0, -1.0, 0.0]), jnp.array([1, -1, 1]), reduction="none")
      Array([0.126928 , 0.3132617, 0.6931472], dtype=float32)
    """
    loss_name = "soft_margin_loss"
    _checks.check_reduction(loss_name, reduction)
    dtype = _checks.floating_dtype(loss_name, input=input)
    _checks.floating_dtype(loss_name, integers_to_float32=True, target=target)  # torch casts it to `input`'s
    input, target = _checks.cast_for_computation(dtype, input, target)
    _checks.check_broadcasts_to(loss_name, "target", target.shape, "input", input.shape)
    return reduce(-_log_sigmoid(input * target), reduction).astype(dtype)


@typed_jit(static_argnames=("reduction",))
def multilabel_soft_margin_loss(
    input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, reduction: Reduction = "mean"
) -> jax.Array:
    r"""Multi-label one-versus-all logistic loss, as `torch.nn.functional.multilabel_soft_margin_loss`.

    .. math:: \ell_n = -\frac{1}{C} \sum_c w_c \left[ t_{nc} \log \sigma(x_{nc})
                       + (1 - t_{nc}) \log \sigma(-x_{nc}) \right]

    one loss per sample, ``C = input.shape[-1]``; the reduction then runs over the samples. Soft targets in
    [0, 1] work. Plain autodiff gives torch's gradients for `input`, `target` and `weight`. Unweighted, this
    is ``optax.sigmoid_binary_cross_entropy(input, target).mean(-1)`` followed by the reduction.

    Shapes follow torch, quirk included: `target` and `weight` broadcast against `input` (and may enlarge the
    result), then the sum runs over axis ``input.ndim - 1`` of the broadcast result, divided by `input`'s last
    size. E.g. a ``(1, 4, 3)`` target with a ``(4, 3)`` input sums over axis 1 and gives ``(1, 3)``.

    Args:
      input: logits ``x``, shape ``(..., C)`` with at least one axis: ``(C,)`` for one sample, ``(N, C)``,
        ``(N, K, C)``, ...
      target: ``t``, broadcastable to `input`; floating or integer.
      weight: optional per-class weights ``w``, broadcastable (typically ``(C,)``); floating or integer.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The per-sample losses (``input.shape[:-1]`` unless broadcasting enlarged it) for ``'none'``, else a
      scalar; in the promoted dtype of the operands.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import multilabel_soft_margin_loss
      >>> multilabel_soft_margin_loss(jnp.array([[2.0, -1.0, 0.0]]), jnp.array([[1, 0, 1]]), reduction="none")
      Array([0.37777898], dtype=float32)
    """
    loss_name = "multilabel_soft_margin_loss"
    _checks.check_reduction(loss_name, reduction)
    _checks.floating_dtype(loss_name, input=input)
    dtype = _checks.floating_dtype(
        loss_name, integers_to_float32=True, booleans=("weight",), input=input, target=target, weight=weight
    )
    input, target = _checks.cast_for_computation(dtype, input, target)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    if input.ndim == 0:
        raise ValueError(f"{loss_name}: `input` must have at least one axis (the classes); got shape ().")
    shapes = dict(input=input.shape, target=target.shape)
    if weight is not None:
        shapes["weight"] = weight.shape
    _checks.broadcast_shape(loss_name, **shapes)
    # torch's formula term by term, so that NaN appears where torch's does (x = ±inf gives 0 · inf).
    loss = -(target * _log_sigmoid(input) + (1 - target) * _log_sigmoid(-input))
    if weight is not None:
        loss = loss * weight
    per_sample = jnp.sum(loss, axis=input.ndim - 1) / input.shape[-1]
    return reduce(per_sample, reduction).astype(dtype)
