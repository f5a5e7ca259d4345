"""Margin losses: multilabel_margin_loss, multi_margin_loss, margin_ranking_loss, hinge_embedding_loss."""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _subgradients
from jaxloss._jit import FloatOption, typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import Reduction


def _score_matrix(loss: str, input: jax.Array) -> jax.Array:
    """`input` of shape ``()``, ``(C,)`` or ``(N, C)`` with ``C > 0`` as an ``(N, C)`` matrix (``N = 1`` for the
    first two; a 0-dim input is one sample of one class), as torch's multi-class margin kernels view it."""
    shape = input.shape
    if not (input.ndim == 0 or (input.ndim <= 2 and shape[-1] > 0)):
        raise ValueError(
            f"{loss}: `input` must be 0-dim, a non-empty vector (C,) or a matrix (N, C) with C > 0 (N may be "
            f"0); got shape {tuple(shape)}."
        )
    return input.reshape((-1, 1) if input.ndim == 0 else (-1, shape[-1]))


def _multilabel_margin_loss(
    input: ArrayLike, target: ArrayLike, reduction: Reduction
) -> tuple[jax.Array, _checks.Failures]:
    """multilabel_margin_loss's checks and computation; returns ``(loss, failures)`` (see `_checks`)."""
    name = "multilabel_margin_loss"
    _checks.check_reduction(name, reduction)
    dtype = _checks.floating_dtype(name, input=input)
    _checks.check_index_dtype(name, "target", target)
    (input,) = _checks.cast_for_computation(dtype, input)
    target = jnp.asarray(target)
    scores = _score_matrix(name, input)
    n, c = scores.shape
    # torch: an unbatched input takes any target of C elements with at most one dimension (so () when C is 1);
    # a batch takes exactly the input's shape.
    valid_shape = (
        target.ndim <= 1 and target.size == c if input.ndim <= 1 else tuple(target.shape) == tuple(input.shape)
    )
    if not valid_shape:
        expected = f"{c} elements in at most one dimension" if input.ndim <= 1 else f"shape {tuple(input.shape)}"
        raise ValueError(
            f"{name}: `target` must hold {expected} (class indices ending at the first -1) for `input` of shape "
            f"{tuple(input.shape)}; got shape {tuple(target.shape)}."
        )
    labels = target.reshape(n, c)
    # torch checks every entry, also those after the first -1.
    out_of_range = jnp.any((labels < -1) | (labels >= c), axis=-1)
    failures = {f"`target` must hold class indices in [-1, {c}) (-1 ends a sample's list)": jnp.any(out_of_range)}
    scores = _checks.nan_derivatives_if(_checks.any_failed(failures), scores)
    # Entry j counts while no negative entry precedes or is it (torch stops at the first negative index).
    listed = jnp.cumsum(labels < 0, axis=-1) == 0
    rows = jnp.arange(n)[:, None]
    # The classes each sample lists, scattered (C, never listed, is dropped): no one-hot of the target.
    is_target = jnp.zeros((n, c), bool).at[rows, jnp.where(listed, labels, c)].set(True, mode="drop")
    listed_scores = jnp.take_along_axis(scores, jnp.clip(labels, 0, c - 1), axis=-1)  # x[y_j], (N, C)
    # All pairs (listed j, class i) at once, as an (N, C, C) hinge. torch's loop takes the same O(N C²) time;
    # the pairwise form keeps its arithmetic z = (1 - x[y_j]) + x[i] per pair, so every term and every tie
    # z == 0 is exactly torch's (a sort-and-cumulative-sum form, O(N C log C), would round differently and
    # cancel for large scores). The price is memory: XLA keeps one (N, C, C) buffer (244 MiB in float32 for
    # N = 64, C = 1000), where torch's loop needs O(N C).
    z = (1 - listed_scores)[:, :, None] + scores[:, None, :]
    # Only z > 0 counts, strictly: torch's backward gives no gradient at z == 0, and a NaN z counts 0.
    active = listed[:, :, None] & ~is_target[:, None, :] & (z > 0)
    per_sample = jnp.sum(jnp.where(active, z, 0), axis=(1, 2)) / c
    per_sample = _checks.nan_where(out_of_range, per_sample)
    # torch returns a scalar for an unbatched input, whatever the reduction.
    loss = per_sample.reshape(()) if target.ndim <= 1 else reduce(per_sample, reduction)
    return loss.astype(dtype), failures


_multilabel_margin_loss_jit = typed_jit(static_argnames=("reduction",))(_multilabel_margin_loss)


def multilabel_margin_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean") -> jax.Array:
    r"""Multi-label hinge loss, as `torch.nn.functional.multilabel_margin_loss`.

    Each sample lists its target classes in `target`, up to the first ``-1``. With ``J`` the listed
    entries (a class listed twice counts twice) and ``I`` the classes not listed,

    .. math:: \ell_n = \frac{1}{C} \sum_{j \in J} \sum_{i \in I} \max(0,\ 1 - (x_{n, y_{nj}} - x_{n, i}))

    A term counts only where ``z = 1 - (x[y_j] - x[i])`` is strictly positive, as in torch's hand-written
    backward: at ``x[y_j] - x[i] == 1`` the gradient is 0, and a NaN score only drops the terms it is in.
    optax has no multi-label hinge loss; `optax.multiclass_hinge_loss` is the single-label Crammer-Singer
    variant (see `multi_margin_loss`).

    The pairs are evaluated at once, so memory grows as ``N C²`` (torch's loop: ``N C``).

    Unlike torch, which requires int64, any integer `target` is accepted. For an empty batch ``(0, C)``
    ``'mean'`` is NaN and ``'sum'`` 0 (torch 2.13 returns uninitialised memory there).

    Data check: every `target` entry, also after the first ``-1``, must lie in ``[-1, C)``. An eager call
    raises `ValueError` otherwise; under `jax.jit`/`jax.vmap` the values cannot be checked, and the loss of
    each sample with a bad entry is NaN instead (so a reduced loss is NaN, and so is every element of the
    gradient).

    Args:
      input: scores ``x``, floating, of shape ``(N, C)``, ``(C,)`` or ``()`` (one class); ``C > 0``.
      target: integer class indices, ``-1``-terminated: shape ``(N, C)`` for a batch, or ``C`` elements in at
        most one dimension for an unbatched input.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      ``(N,)`` for ``'none'`` with a batch, else a scalar (an unbatched input always gives a scalar, as in
      torch), in `input`'s dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import multilabel_margin_loss
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> y = jnp.array([[3, 0, -1, 1]])  # classes 3 and 0; the 1 after -1 is ignored
      >>> multilabel_margin_loss(x, y)
      Array(0.85, dtype=float32)
    """
    loss, failures = _multilabel_margin_loss_jit(input, target, reduction=reduction)
    return _checks.raise_failed("multilabel_margin_loss", loss, failures)


def _multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None,
    p: int,
    margin: float | jax.Array,
    reduction: Reduction,
) -> tuple[jax.Array, _checks.Failures]:
    """multi_margin_loss's checks and computation; returns ``(loss, failures)`` (see `_checks`)."""
    name = "multi_margin_loss"
    _checks.check_reduction(name, reduction)
    _checks.check_option(name, "p", p, not isinstance(p, str) and (p == 1 or p == 2), "1 or 2")
    power = 1 if p == 1 else 2
    dtype = _checks.floating_dtype(name, input=input, weight=weight)
    _checks.check_index_dtype(name, "target", target)
    (input,) = _checks.cast_for_computation(dtype, input)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    target = jnp.asarray(target)
    scores = _score_matrix(name, input)
    n, c = scores.shape
    if not (target.ndim <= 1 and target.size == n):
        raise ValueError(
            f"{name}: `target` must hold one class index per sample ({n}) in at most one dimension for "
            f"`input` of shape {tuple(input.shape)}; got shape {tuple(target.shape)}."
        )
    if weight is not None and weight.shape != (c,):
        raise ValueError(
            f"{name}: `weight` must be one-dimensional with one weight per class ({c},); got shape "
            f"{tuple(weight.shape)}."
        )
    labels = target.reshape(n)
    out_of_range = (labels < 0) | (labels >= c)
    failures = {f"`target` must hold class indices in [0, {c})": jnp.any(out_of_range)}
    failed = _checks.any_failed(failures)
    scores = _checks.nan_derivatives_if(failed, scores)
    weight = _checks.nan_derivatives_if(failed, weight)
    # The margin in the scores' dtype, as torch's Python-number margin (a JAX scalar of another dtype promotes
    # nothing).
    margin = _checks.nan_derivatives_if(failed, jnp.asarray(margin, scores.dtype))
    labels = jnp.clip(labels, 0, c - 1)
    target_scores = jnp.take_along_axis(scores, labels[:, None], axis=-1)  # x[y], (N, 1)
    z = (margin - target_scores) + scores  # torch's order: margin - x[y] + x[i]
    active = z > 0  # strictly, as torch's forward and hand-written backward (no gradient at z == 0)
    hinge = jnp.where(active, z, 0)  # the select before the power keeps z**2's gradient finite at z = -inf
    # The class weight multiplies each active term after the power, as in torch (an inactive term stays 0).
    terms = hinge**power if weight is None else jnp.where(active, hinge**power * weight[labels][:, None], 0)
    # The target class itself is no term: zero it by a scatter (no one-hot of the target).
    terms = terms.at[jnp.arange(n), labels].set(0)
    per_sample = _checks.nan_where(out_of_range, jnp.sum(terms, axis=-1) / c)
    # 'none' has the target's shape: (N,), (1,) or ().
    loss = per_sample.reshape(target.shape) if reduction == "none" else reduce(per_sample, reduction)
    return loss.astype(dtype), failures


_multi_margin_loss_jit = typed_jit(static_argnames=("p", "reduction"), float_options=(FloatOption("margin"),))(
    _multi_margin_loss
)


def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float | jax.Array = 1.0,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Multi-class hinge loss, as `torch.nn.functional.multi_margin_loss`.

    .. math:: \ell_n = \frac{w_{y_n}}{C} \sum_{i \ne y_n} \max(0,\ \mathrm{margin} - x_{n, y_n} + x_{n, i})^p

    ``p`` is 1 or 2; the class weight ``w[y]`` multiplies after the power, and ``'mean'`` is the plain mean
    over samples (weights do not renormalise it). A term counts only where ``margin - x[y] + x[i]`` is
    strictly positive, as in torch's hand-written backward: at a tie the gradient is 0, and a NaN score only
    drops the terms it is in. The gradient with respect to `weight` is the plain derivative (torch refuses to
    differentiate `weight`).

    Unlike `optax.multiclass_hinge_loss` (Crammer-Singer: the *largest* violation
    ``max_i(x_i + 1 - [i = y]) - x_y``), this sums the violations of all other classes and divides by ``C``.

    Unlike torch, which requires int64 targets and a `weight` of the input's dtype, any integer `target` is
    accepted and a float32/float64 mix promotes to float64. For an empty batch ``(0, C)`` ``'mean'`` is NaN
    and ``'sum'`` 0 (torch 2.13 returns uninitialised memory there).

    Data check: `target` must lie in ``[0, C)``. An eager call raises `ValueError` otherwise; under
    `jax.jit`/`jax.vmap` the values cannot be checked, and the loss of each sample with a bad target is NaN
    instead (so a reduced loss is NaN, and so is every element of the gradients).

    Args:
      input: scores ``x``, floating, of shape ``(N, C)``, ``(C,)`` or ``()`` (one class); ``C > 0``.
      target: integer class indices ``y``: ``(N,)`` for a batch; ``()`` or ``(1,)`` for an unbatched input
        (``()`` also for a batch of one).
      p: the power, 1 or 2.
      margin: the margin: any real number, negative included; a Python number or a real JAX scalar (which may
        be traced, batched with `jax.vmap`, or differentiated).
      weight: optional class weights ``w`` of shape ``(C,)``.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      For ``'none'``, the per-sample losses in `target`'s shape; else a scalar. In the promoted dtype of
      `input` and `weight`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import multi_margin_loss
      >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> multi_margin_loss(x, jnp.array([3]))
      Array(0.325, dtype=float32)
    """
    loss, failures = _multi_margin_loss_jit(input, target, weight, p=p, margin=margin, reduction=reduction)
    return _checks.raise_failed("multi_margin_loss", loss, failures)


@typed_jit(static_argnames=("reduction",), float_options=(FloatOption("margin"),))
def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float | jax.Array = 0.0,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Ranking hinge loss, as `torch.nn.functional.margin_ranking_loss`.

    .. math:: \ell_i = \max(0,\ -t_i (x_{1,i} - x_{2,i}) + \mathrm{margin})

    ``t`` is used as given (not only ±1) and is differentiated like the inputs. At the kink
    ``-t (x1 - x2) + margin == 0`` the gradient is that of the linear part, as torch's `clamp_min`.
    With ``input2 = 0`` and ``margin = 1`` this is `optax.hinge_loss(input1, target)`, reduced.

    Args:
      input1: scores ``x1``, any shape; integers are accepted (the result is then float32, as in torch).
      input2: scores ``x2``, with the same number of dimensions as `input1`.
      target: ``t``, with the same number of dimensions; the three broadcast together.
      margin: the margin: any real number; a Python number or a real JAX scalar (which may be traced, batched
        with `jax.vmap`, or differentiated).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the three
      operands (float32 when all are integers).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import margin_ranking_loss
      >>> margin_ranking_loss(jnp.array([1., 2.]), jnp.array([3., 1.]), jnp.array([1., -1.]))
      Array(1.5, dtype=float32)
    """
    name = "margin_ranking_loss"
    _checks.check_reduction(name, reduction)
    dtype = _checks.floating_dtype(name, integers_to_float32=True, input1=input1, input2=input2, target=target)
    input1, input2, target = _checks.cast_for_computation(dtype, input1, input2, target)
    if not input1.ndim == input2.ndim == target.ndim:
        raise ValueError(
            f"{name}: `input1`, `input2` and `target` must have the same number of dimensions; got shapes "
            f"{tuple(input1.shape)}, {tuple(input2.shape)} and {tuple(target.shape)}."
        )
    _checks.broadcast_shape(name, input1=input1.shape, input2=input2.shape, target=target.shape)
    # The margin in the operands' dtype, as torch's Python-number margin (a JAX scalar of another dtype promotes
    # nothing).
    margin = jnp.asarray(margin, input1.dtype)
    loss = _subgradients.clamp_min(-target * (input1 - input2) + margin, 0)
    return reduce(loss, reduction).astype(dtype)


@typed_jit(static_argnames=("reduction",), float_options=(FloatOption("margin"),))
def hinge_embedding_loss(
    input: ArrayLike, target: ArrayLike, margin: float | jax.Array = 1.0, reduction: Reduction = "mean"
) -> jax.Array:
    r"""Hinge embedding loss, as `torch.nn.functional.hinge_embedding_loss`.

    .. math:: \ell_i = [t_i \ne 1] \max(0,\ \mathrm{margin} - x_i) + [t_i \ne -1]\, x_i

    so ``t = 1`` gives ``x``, ``t = -1`` gives ``max(0, margin - x)``, and any other ``t`` both terms. At
    ``x == margin`` the hinge's gradient is -1, as torch's `clamp_min`. The target only selects terms: its
    gradient is 0. Not `optax.hinge_loss`, which is ``max(0, 1 - t x)`` (see `margin_ranking_loss`).

    Unlike torch, which returns an int64 loss for ``'sum'``/``'none'`` and raises for ``'mean'`` when `input`
    holds integers, an integer `input` raises `TypeError` for every reduction: a loss is for differentiating.

    Args:
      input: ``x`` (typically distances), any shape, floating.
      target: ``t``, broadcastable with `input` (silently, as in torch); boolean, integer or floating. Its
        dtype does not affect the result's.
      margin: the margin: any real number; a Python number or a real JAX scalar (which may be traced, batched
        with `jax.vmap`, or differentiated).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in `input`'s dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import hinge_embedding_loss
      >>> hinge_embedding_loss(jnp.array([0.3, 0.3, 2.0]), jnp.array([1, -1, -1]), reduction="none")
      Array([0.3, 0.7, 0. ], dtype=float32)
    """
    name = "hinge_embedding_loss"
    _checks.check_reduction(name, reduction)
    dtype = _checks.floating_dtype(name, input=input)
    target_dtype = jnp.result_type(target)
    if jnp.issubdtype(target_dtype, jnp.complexfloating):
        raise TypeError(f"{name}: `target` must be a boolean, integer or floating array; got dtype {target_dtype}.")
    (input,) = _checks.cast_for_computation(dtype, input)
    target = jnp.asarray(target)
    _checks.broadcast_shape(name, input=input.shape, target=target.shape)
    # torch's form: selects, not products with indicators, so an infinite x in an unselected term stays out.
    # The margin in the input's dtype, as torch's Python-number margin (a JAX scalar of another dtype promotes
    # nothing).
    hinge = jnp.where(target != 1, _subgradients.clamp_min(jnp.asarray(margin, input.dtype) - input, 0), 0)
    linear = jnp.where(target != -1, input, 0)
    return reduce(hinge + linear, reduction).astype(dtype)
