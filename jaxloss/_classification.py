"""Classification losses: cross_entropy, nll_loss.

Both reduce per-position losses built by `index_losses` (class-index targets) or `probability_losses`
(cross_entropy's class-probability targets). `class_axis`, `check_index_target`, `check_class_weight`,
`index_failures`, `index_losses`, `IndexLosses`, `reduce_index_losses`, `probability_losses`,
`LABEL_SMOOTHING`, `known_real`, `needs_smoothing` and `cross_entropy_with_failures` are meant for reuse by other
modules (a fused `linear_cross_entropy` computes logits chunk by chunk and feeds them to `index_losses`).
"""

import numbers
import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import FloatOption, typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import Reduction


def class_axis(loss: str, input_shape: tuple[int, ...], axis: int | None) -> int:
    """The non-negative class axis of an input of `input_shape`.

    Args:
      loss: the loss's name, for error messages.
      input_shape: the input's shape.
      axis: None for torch's layout (axis 1, or 0 for a 1-D unbatched input), else any valid axis.

    Raises:
      ValueError: the input is 0-dim, or `axis` is not an axis of it.
    """
    ndim = len(input_shape)
    if ndim == 0:
        raise ValueError(f"{loss}: `input` must have at least 1 dimension (the classes); got shape ().")
    if axis is None:
        return 0 if ndim == 1 else 1
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{loss}: `axis` must be an int or None; got {axis!r}.") from None
    _checks.check_option(loss, "axis", axis, -ndim <= axis < ndim, f"an axis of `input` (ndim {ndim})")
    return axis % ndim


def check_index_target(loss: str, input_shape: tuple[int, ...], target: jax.Array, axis: int) -> None:
    """Checks a class-index target: an integer array (any width, signed or not) of `input_shape` without the
    class `axis`.

    (torch's forward also takes a target of shape ``(1,)`` for an unbatched ``(C,)`` input, but its backward
    then fails with "size mismatch": jaxloss rejects that shape up front.)

    Raises:
      TypeError: `target` is not an integer array.
      ValueError: its shape does not match.
    """
    _checks.check_index_dtype(loss, "target", target)
    expected = input_shape[:axis] + input_shape[axis + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"{loss}: `target` of class indices must have shape {expected} (`input`'s shape {input_shape} "
            f"without its class axis {axis}); got {target.shape}."
        )


def check_class_weight(loss: str, weight: ArrayLike | None, num_classes: int) -> None:
    """Raises `ValueError` unless `weight` is None or has shape ``(C,)``, one weight per class."""
    if weight is not None and jnp.shape(weight) != (num_classes,):
        raise ValueError(
            f"{loss}: `weight` must have shape ({num_classes},), one weight per class; got {jnp.shape(weight)}."
        )


def _equal_or_false(target: jax.Array, value: int) -> jax.Array:
    """``target == value``, all False when `value` does not fit `target`'s integer dtype (no overflow)."""
    info = jnp.iinfo(target.dtype)
    if info.min <= value <= info.max:
        return target == value
    return jnp.zeros(target.shape, bool)


def _at_least(target: jax.Array, value: int) -> jax.Array:
    """``target >= value``, all False when `value` exceeds `target`'s integer dtype (no overflow)."""
    if value <= jnp.iinfo(target.dtype).max:
        return target >= value
    return jnp.zeros(target.shape, bool)


# torch's ε, compiled as data: torch raises for `ε > 1` (so NaN passes) and skips smoothing for ε <= 0 or NaN.
LABEL_SMOOTHING = FloatOption(
    "label_smoothing", "at most 1.0", lambda smoothing: (smoothing <= 1) | (smoothing != smoothing)
)


def known_real(value: object) -> float | None:
    """The value of a real scalar option if it is known now (a Python or NumPy number, or a concrete 0-dim JAX
    array), else None: a traced value, or anything that is not a real scalar (`typed_jit`'s screen names those)."""
    if isinstance(value, jax.Array):
        value = _checks.concrete_value(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    return None


def needs_smoothing(label_smoothing: object) -> bool:
    """A loss's static `with_smoothing` for ε = `label_smoothing`: whether to compile the smoothing term.

    False for a value known to be <= 0 or NaN (torch then skips the term: no class reduction is compiled),
    True for a positive one and for a traced one (whose smoothing, if any, is decided in the computation). So
    the default ε = 0 compiles without the term, and every positive Python value shares one compilation with it.
    """
    known = known_real(label_smoothing)
    return known is None or known > 0


def _smoothing(label_smoothing: jax.Array | float, num_classes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(on, ε, ε / C)`` for torch's effective ε: ε where ε > 0 (`on`), else 0 (ε <= 0 or NaN: no smoothing).

    ``ε / C`` is infinite without classes (C = 0), as torch computes it, and 0 where smoothing is off.
    (An integer ε comes out as a float.)
    """
    on = jnp.asarray(label_smoothing) > 0
    smoothing = jnp.where(on, label_smoothing, 0.0)  # 0 for a NaN ε, with a zero derivative there
    return on, smoothing, jnp.where(on, smoothing / num_classes, 0.0)


def _index_target_masks(target: jax.Array, num_classes: int, ignore_index: int) -> tuple[jax.Array, jax.Array]:
    """``(ignored, out_of_range)`` for class indices `target`: where it is `ignore_index`, and where it is
    neither that nor a class in ``[0, C)``."""
    ignored = _equal_or_false(target, ignore_index)
    return ignored, ~ignored & ((target < 0) | _at_least(target, num_classes))


def index_failures(target: jax.Array, num_classes: int, ignore_index: int) -> _checks.Failures:
    """The value check of class indices `target` (see `_checks`): each is `ignore_index` or a class in ``[0, C)``.

    A cheap function of the target alone, so that a loss can compute it before its differentiable operands
    pass through `_checks.nan_derivatives_if`.
    """
    _, out_of_range = _index_target_masks(target, num_classes, ignore_index)
    message = f"`target` must hold class indices in [0, {num_classes}) or `ignore_index` ({ignore_index})"
    return {message: jnp.any(out_of_range)}


class IndexLosses(NamedTuple):
    """Per-position parts of the loss of class-index targets (see `index_losses`), each of the target's shape.

    Attributes:
      nll: ``w_t · (−lp_t)``; 0 where the target is ignored, NaN where it is out of range.
      smooth: ``Σ_c w_c · (−lp_c)``, the label-smoothing term; 0 where ignored, and everywhere (with zero
        derivatives) when ε <= 0. None without smoothing.
      weights: ``w_t``, the weight each position adds to ``'mean'``'s denominator; 0 where ignored.
    """

    nll: jax.Array
    smooth: jax.Array | None
    weights: jax.Array

    def map_values(self, fn: Callable[[jax.Array], jax.Array]) -> "IndexLosses":
        """`fn` applied to the `nll`, `smooth` (when present) and `weights` parts."""
        smooth = None if self.smooth is None else fn(self.smooth)
        return IndexLosses(fn(self.nll), smooth, fn(self.weights))


def _class_sum(values: jax.Array, weight: jax.Array | None, axis: int) -> jax.Array:
    """``Σ_c w_c · values_c`` over `axis` (``Σ_c values_c`` without `weight`).

    With a weight this is a dot product at full float32 precision (no TF32 on GPUs): on CPU it is several
    times faster than a broadcast product and a reduction, forward and backward.
    """
    if weight is None:
        return jnp.sum(values, axis)
    return jnp.tensordot(values, weight, axes=([axis], [0]), precision=jax.lax.Precision.HIGHEST)


def index_losses(
    scores: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    *,
    normalize: bool,
    ignore_index: int,
    label_smoothing: jax.Array | float | None,
    axis: int,
) -> IndexLosses:
    r"""Per-position loss parts of class-index targets; `reduce_index_losses` mixes and reduces them as torch.

    For every position (every element of `target`), with ``t`` its target class, ``lp`` its log-probabilities
    (the classes along `axis`) and ``w`` the class weights (1 without `weight`), the parts are
    ``nll = w_t · (−lp_t)``, ``smooth = Σ_c w_c · (−lp_c)`` and ``weights = w_t``, all 0 where
    ``t == ignore_index``. Where ``t`` is neither `ignore_index` nor in ``[0, C)``, `nll` is NaN (the gather
    itself reads class 0 there); `index_failures` is the matching value check, which the caller computes first
    (for `_checks.nan_derivatives_if`) and reports.

    With `normalize`, `scores` are logits and ``lp = log_softmax(scores)``, computed as
    ``(x − m) − log Σ exp(x − m)`` with the maximum ``m`` held constant (it cancels from the gradient): the
    normalizer is computed once and the log-probabilities are never materialised; the target's score is
    gathered from the logits themselves, so the gradient is one scatter plus the softmax term, and the
    smoothing term is ``Σ_c w_c (x_c − m) − Σ_c w_c · log Σ exp(x − m)`` (both sums of one sign: no
    cancellation). Without `normalize`, `scores` are the log-probabilities (`nll_loss`'s input).

    No one-hot anywhere: a gather along `axis`, a gather of the target's weight, and a reduction (a dot
    product with the weights) over the classes for smoothing. The autodiff gradient is torch's hand-written
    one, including 0 at ignored positions whatever the cotangent (an all-ignored ``'mean'`` is NaN with an
    all-zero gradient; a zero total weight gives NaN, as in torch).

    A caller that chunks the positions (e.g. a fused linear cross-entropy) can sum each part over each chunk
    and hand the stacked per-chunk sums to `reduce_index_losses` with ``'sum'`` or ``'mean'``.

    Args:
      scores: floating array with the classes along `axis`, in the computation dtype: logits with
        `normalize`, log-probabilities without.
      target: integer array (any width) of `scores`' shape without `axis` (see `check_index_target`).
      weight: optional ``(C,)`` class weights of `scores`' dtype.
      normalize: whether `scores` are logits (True) or log-probabilities (False).
      ignore_index: the target value to skip; any int.
      label_smoothing: ε, or None not to compute the `smooth` part at all (torch computes it only for ε > 0).
        Where ε <= 0 (or NaN), a traced ε, the part is 0 and passes no NaN or infinity into any derivative.
      axis: the non-negative class axis of `scores`.

    Returns:
      The `IndexLosses` parts.
    """
    num_classes = scores.shape[axis]
    ignored, out_of_range = _index_target_masks(target, num_classes, ignore_index)
    # A valid class to gather from at skipped positions (their gathered value is masked below). Clipping needs
    # no mask, so XLA fuses it into the gather instead of materialising one.
    safe = jnp.clip(target, 0, max(num_classes - 1, 0))
    target_scores = jnp.take_along_axis(
        scores, jnp.expand_dims(safe, axis), axis=axis, mode="promise_in_bounds"
    ).squeeze(axis)
    if normalize:
        shift = jax.lax.stop_gradient(jnp.max(scores, axis, keepdims=True, initial=-jnp.inf))
        shifted = scores - shift  # NaN in rows with a +inf logit or only -inf logits, as in torch
        log_normalizer = jnp.log(jnp.sum(jnp.exp(shifted), axis))
        target_log_probs = (target_scores - shift.squeeze(axis)) - log_normalizer
    else:
        shifted, target_log_probs = scores, target_scores
    if weight is None:
        nll = -target_log_probs
        weights = jnp.where(ignored, 0, 1).astype(scores.dtype)
    else:
        target_weights = weight.at[safe].get(mode="promise_in_bounds")
        nll = -target_weights * target_log_probs
        weights = jnp.where(ignored, 0, target_weights)
    # Masking with `where` (not a product) gives ignored positions a zero gradient even for an infinite
    # cotangent (an all-ignored 'mean' divides by 0) or infinite log-probabilities.
    nll = _checks.nan_where(out_of_range, jnp.where(ignored, 0, nll))
    smooth = None
    if label_smoothing is not None:
        on = jnp.asarray(label_smoothing) > 0
        # Where smoothing is off, the part is unused (see `reduce_index_losses`) but still differentiated, with a
        # zero cotangent: the selects below stop that cotangent before it meets an infinite value (a -inf logit
        # gives 0 · inf = NaN in the weight's derivative, a -inf sum NaN in 'mean''s denominator).
        smooth_weight = None if weight is None else jnp.where(on, weight, 0)
        class_sum = _class_sum(shifted, smooth_weight, axis)
        if normalize:
            class_sum = class_sum - log_normalizer * (num_classes if smooth_weight is None else jnp.sum(smooth_weight))
        smooth = jnp.where(ignored | ~on, 0, -class_sum)
    return IndexLosses(nll, smooth, weights)


def reduce_index_losses(
    parts: IndexLosses, reduction: Reduction, label_smoothing: jax.Array | float, num_classes: int
) -> jax.Array:
    """torch's reduction of `index_losses`' parts: ``(1 − ε) · R(nll) + ε / C · R(smooth)``.

    ``R`` is the reduction: ``'none'`` keeps the positions, ``'sum'`` sums them, ``'mean'`` divides the sum by
    the total weight ``Σ weights`` of the kept targets. Each part is reduced on its own before they are mixed,
    as in torch: a zero total weight gives NaN (0 / 0 in the `nll` part) even where the smoothing part is
    positive. Without a `smooth` part, or where ε <= 0 (or NaN), the result is ``R(nll)``, and the derivative
    with respect to ε is 0.
    """

    def reduce_part(values: jax.Array) -> jax.Array:
        if reduction == "mean":
            return jnp.sum(values) / jnp.sum(parts.weights)  # 0 / 0 = NaN when all targets are ignored
        return reduce(values, reduction)

    loss = reduce_part(parts.nll)
    if parts.smooth is None:
        return loss
    on, smoothing, per_class = _smoothing(label_smoothing, num_classes)
    # The select, not the sum alone, keeps an unused smoothing part out of the value and its forward derivative
    # (0 · inf = NaN); `index_losses` keeps it out of the reverse one.
    return jnp.where(on, (1 - smoothing) * loss + per_class * reduce_part(parts.smooth), loss)


def probability_losses(
    log_probs: jax.Array,
    target: jax.Array,
    weight: jax.Array | None,
    label_smoothing: jax.Array | float | None,
    axis: int,
) -> jax.Array:
    r"""Per-position losses of class-probability targets: ``-Σ_c w_c p_c lp_c``, with ``p`` mixed with the
    uniform distribution, ``p (1 - ε) + ε / C``, under label smoothing (torch's order of products): for ε > 0;
    ε None (nothing compiled), <= 0 or NaN leaves ``p`` as it is."""
    if label_smoothing is not None:
        on, smoothing, per_class = _smoothing(label_smoothing, log_probs.shape[axis])
        target = jnp.where(on, target * (1 - smoothing) + per_class, target)
    return -_class_sum(log_probs * target, weight, axis)


@typed_jit(static_argnames=("ignore_index", "reduction", "axis", "with_smoothing"), float_options=(LABEL_SMOOTHING,))
def cross_entropy_with_failures(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Reduction,
    label_smoothing: jax.Array | float,
    axis: int | None,
    *,
    with_smoothing: bool,
) -> tuple[jax.Array, _checks.Failures]:
    """cross_entropy's checks and fused computation; returns ``(loss, failures)``.

    `with_smoothing` is `needs_smoothing(label_smoothing)`: without it ε is known to be <= 0 (or NaN) and unused,
    and neither the smoothing term nor ε's range check is compiled.
    """
    name = "cross_entropy"
    input, target = jnp.asarray(input), jnp.asarray(target)
    _checks.check_reduction(name, reduction)
    ignore_index = _checks.int_option(name, "ignore_index", ignore_index)
    # ε > 1 traced: a value check (a known one raised before the call), failing the whole loss.
    smoothing = jnp.asarray(label_smoothing) if with_smoothing else None
    option_failures = {} if smoothing is None else LABEL_SMOOTHING.failures(smoothing)
    option_failed = _checks.any_failed(option_failures)
    input_dtype = _checks.floating_dtype(name, input=input)
    axis = class_axis(name, input.shape, axis)
    num_classes = input.shape[axis]

    if target.shape == input.shape:  # class probabilities, as torch decides: by shape alone
        if not jnp.issubdtype(target.dtype, jnp.floating):
            raise TypeError(
                f"{name}: a `target` of `input`'s shape {input.shape} holds class probabilities and must be "
                f"floating-point; got dtype {target.dtype}."
            )
        _checks.check_option(
            name,
            "ignore_index",
            ignore_index,
            ignore_index < 0,
            "negative (unused) with class-probability targets, as in torch",
        )
        check_class_weight(name, weight, num_classes)
        # torch promotes here, integer weights included (`input` and `target` are floating by now).
        dtype = _checks.floating_dtype(
            name, integers_to_float32=True, booleans=("weight",), input=input, target=target, weight=weight
        )
        input, target = _checks.cast_for_computation(dtype, input, target)
        weight = _checks.cast_optional_for_computation(dtype, weight)
        if smoothing is not None:
            input, target = (_checks.nan_derivatives_if(option_failed, a) for a in (input, target))
            weight = _checks.nan_derivatives_if(option_failed, weight)
            smoothing = _checks.nan_derivatives_if(option_failed, smoothing)
        losses = probability_losses(jax.nn.log_softmax(input, axis), target, weight, smoothing, axis)
        if reduction == "mean":
            # Divide by the number of positions; torch gives NaN for any empty input (even with C = 0).
            loss = jnp.sum(losses) / (losses.size if input.size else 0)
        else:
            loss = reduce(losses, reduction)
        if smoothing is not None:
            loss = _checks.nan_where(option_failed, loss)
        return loss.astype(dtype), option_failures

    index_shape = input.shape[:axis] + input.shape[axis + 1 :]
    if jnp.issubdtype(target.dtype, jnp.inexact) and target.shape != index_shape:
        raise ValueError(
            f"{name}: `target` must be class indices of shape {index_shape} or class probabilities of "
            f"`input`'s shape {input.shape}; got a {target.dtype} array of shape {target.shape}."
        )
    check_index_target(name, input.shape, target, axis)
    check_class_weight(name, weight, num_classes)
    if weight is not None:  # torch's class-index kernels do not promote
        _checks.check_same_dtype(name, "input", input, "weight", weight)
    (input,) = _checks.cast_for_computation(input_dtype, input)
    weight = _checks.cast_optional_for_computation(input_dtype, weight)
    failures = {**option_failures, **index_failures(target, num_classes, ignore_index)}
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    weight = _checks.nan_derivatives_if(failed, weight)
    if smoothing is None:
        parts = index_losses(
            input, target, weight, normalize=True, ignore_index=ignore_index, label_smoothing=None, axis=axis
        )
        return reduce_index_losses(parts, reduction, 0.0, num_classes).astype(input_dtype), failures
    smoothing = _checks.nan_derivatives_if(failed, smoothing)
    parts = index_losses(
        input, target, weight, normalize=True, ignore_index=ignore_index, label_smoothing=smoothing, axis=axis
    )
    loss = _checks.nan_where(option_failed, reduce_index_losses(parts, reduction, smoothing, num_classes))
    return loss.astype(input_dtype), failures


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float | jax.Array = 0.0,
    *,
    axis: int | None = None,
) -> jax.Array:
    r"""Cross-entropy of logits, as `torch.nn.functional.cross_entropy`.

    With ``lp = log_softmax(input)`` over the class axis, ``C`` classes, class weights ``w`` (1 without
    `weight`) and ε = `label_smoothing`, the loss at each position is

    * for class-index targets ``t`` (skipped where ``t == ignore_index``):

      .. math:: \ell = (1 - ε)\,(-w_t\,lp_t) + \frac{ε}{C} \sum_c (-w_c\,lp_c)

      and ``'mean'`` divides the sum by the total weight ``Σ w_t`` of the targets that are not ignored (their
      number without `weight`). All targets ignored (or a zero total weight) gives NaN, as in torch; the
      gradient of an all-ignored batch is all zeros.
    * for class-probability targets ``p`` (a floating `target` of `input`'s shape):

      .. math:: \ell = -\sum_c w_c\,\big(p_c (1 - ε) + ε / C\big)\,lp_c

      and ``'mean'`` divides by the number of positions, never by a weight sum. The gradient flows into
      `target` too. Probabilities are not checked to be normalised (neither does torch).

    torch's reading of the target: a `target` of exactly `input`'s shape holds probabilities, any other
    shape class indices. Like torch 2.13, ``label_smoothing <= 0`` (or NaN) means no smoothing. Unlike torch
    (int64 and uint8 only), class indices of any integer dtype are accepted.

    Gradients are torch's: the softmax minus the (smoothed, weighted) target, 0 at ignored positions, NaN
    where torch's backward divides by a zero total weight. `weight` gets JAX's ordinary gradient (torch
    refuses to differentiate it).

    Differences from `optax.softmax_cross_entropy_with_integer_labels`: torch's layout (classes on axis 1
    unless `axis` says otherwise), `weight`, `ignore_index`, `label_smoothing` and the reductions built in.

    Class indices outside ``[0, C)`` other than `ignore_index` raise `ValueError` eagerly; under `jax.jit`
    or `jax.vmap`, where values are unknown, the loss is NaN at those positions (and so ``'mean'``/``'sum'``
    are NaN), and every element of the gradients is NaN. Likewise ε > 1: `ValueError` when its value is known,
    else a loss that is NaN everywhere, with NaN gradients.

    ε is data, not a static option: every Python value shares one compilation (two in all: ε <= 0, known
    before the call, compiles without the smoothing term), and ε may be traced, batched or differentiated.
    The derivative with respect to ε is that of the formulas above for ε > 0, and 0 for ε <= 0.

    Args:
      input: logits of shape ``(N, C)``, ``(N, C, d1, ..., dk)`` or unbatched ``(C,)`` (classes on `axis`).
      target: class indices of `input`'s shape without the class axis (``(N,)``, ``(N, d1, ..., dk)`` or
        ``()``), any integer dtype; or class probabilities of `input`'s shape, floating.
      weight: optional ``(C,)`` class weights; with class indices it must have `input`'s dtype (as in torch),
        with probabilities it takes part in the dtype promotion.
      ignore_index: target value whose positions are skipped (any int). With probability targets it must stay
        negative (torch rejects any value >= 0).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
      label_smoothing: ε, at most 1 (<= 0 or NaN: no smoothing): a Python number or a real JAX scalar (may be
        traced, batched with `jax.vmap`, or differentiated).
      axis: keyword-only jaxloss extra: the class axis. None is torch's layout (1, or 0 for a 1-D `input`);
        e.g. ``axis=-1`` takes channels-last logits ``(N, ..., C)`` with a ``(N, ...)`` target, no transpose.

    Returns:
      The per-position losses (`target`'s shape, or `input`'s without the class axis) for ``'none'``, else a
      scalar; in `input`'s dtype (promoted with a probability target's and `weight`'s dtype).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxloss.functional import cross_entropy
      >>> cross_entropy(jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1]))
      Array(1.1019..., dtype=float32)
      >>> logits, labels = jnp.array([[2.0, 0.5, -1.0]]), jnp.array([0])
      >>> cross_entropy(logits, labels, label_smoothing=0.1)
      Array(0.3913..., dtype=float32)
      >>> # d/dε = mean_c(−lp_c) − (−lp_t): here the mean of x_t − x_c, 1.5
      >>> jax.grad(lambda eps: cross_entropy(logits, labels, label_smoothing=eps))(0.1)
      Array(1.5..., dtype=float32, weak_type=True)
    """
    return _checks.raise_failed(
        "cross_entropy",
        *cross_entropy_with_failures(
            input,
            target,
            weight,
            ignore_index,
            reduction,
            label_smoothing,
            axis,
            with_smoothing=needs_smoothing(label_smoothing),
        ),
    )


@typed_jit(static_argnames=("ignore_index", "reduction", "axis"))
def _nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: Reduction,
    axis: int | None,
) -> tuple[jax.Array, _checks.Failures]:
    """nll_loss's checks and fused computation; returns ``(loss, failures)``."""
    name = "nll_loss"
    input, target = jnp.asarray(input), jnp.asarray(target)
    _checks.check_reduction(name, reduction)
    ignore_index = _checks.int_option(name, "ignore_index", ignore_index)
    dtype = _checks.floating_dtype(name, input=input)
    axis = class_axis(name, input.shape, axis)
    check_index_target(name, input.shape, target, axis)
    check_class_weight(name, weight, input.shape[axis])
    if weight is not None:  # torch's kernel does not promote
        _checks.check_same_dtype(name, "input", input, "weight", weight)
    (input,) = _checks.cast_for_computation(dtype, input)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    failures = index_failures(target, input.shape[axis], ignore_index)
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    weight = _checks.nan_derivatives_if(failed, weight)
    parts = index_losses(
        input, target, weight, normalize=False, ignore_index=ignore_index, label_smoothing=None, axis=axis
    )
    return reduce_index_losses(parts, reduction, 0.0, input.shape[axis]).astype(dtype), failures


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    *,
    axis: int | None = None,
) -> jax.Array:
    r"""Negative log-likelihood of log-probabilities, as `torch.nn.functional.nll_loss`.

    .. math:: \ell = -w_t\,x_t

    at each position, with ``x`` the input's classes there, ``t`` the target class and ``w`` the class
    weights (1 without `weight`); 0 where ``t == ignore_index``. ``'mean'`` divides the sum by the total
    weight ``Σ w_t`` of the targets that are not ignored (their number without `weight`): NaN when all are
    ignored (with an all-zero gradient) or their weights sum to 0, as in torch. The input is not checked to
    hold log-probabilities (neither does torch). ``nll_loss(log_softmax(x), t)`` is `cross_entropy`;
    optax has no counterpart. Unlike torch (int64 and uint8 only), class indices of any integer dtype are
    accepted.

    Class indices outside ``[0, C)`` other than `ignore_index` raise `ValueError` eagerly; under `jax.jit`
    or `jax.vmap` the loss is NaN at those positions (and so ``'mean'``/``'sum'`` are NaN), and every element
    of the gradients is NaN.

    Args:
      input: log-probabilities of shape ``(N, C)``, ``(N, C, d1, ..., dk)`` or unbatched ``(C,)``.
      target: class indices of `input`'s shape without the class axis (``(N,)``, ``(N, d1, ..., dk)`` or
        ``()``), any integer dtype.
      weight: optional ``(C,)`` class weights of `input`'s dtype.
      ignore_index: target value whose positions are skipped (any int).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
      axis: keyword-only jaxloss extra: the class axis. None is torch's layout (1, or 0 for a 1-D `input`).

    Returns:
      The per-position losses (`target`'s shape) for ``'none'``, else a scalar; in `input`'s dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import nll_loss
      >>> nll_loss(jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]])), jnp.array([0, 1]), reduction="none")
      Array([0.6931472, 0.2876821], dtype=float32)
    """
    return _checks.raise_failed("nll_loss", *_nll_loss(input, target, weight, ignore_index, reduction, axis))
