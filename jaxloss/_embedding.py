"""Embedding losses: cosine_embedding_loss, triplet_margin_loss, triplet_margin_with_distance_loss, and the
pairwise_distance the triplet losses measure with."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _jit, _subgradients
from jaxloss._jit import FloatOption, typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import DistanceFunction, Reduction

# torch's EPSILON in cosine_embedding_loss, added to each squared norm (not to their product or the norms). It is
# a C++ float there, so float64 inputs get float32's 1e-12 = 9.999999960041972e-13 (visible in the gradient at a
# zero vector).
_COSINE_EPSILON = float(np.float32(1e-12))

# The float options, compiled as data (see `FloatOption`). torch checks the triplet margin as `not margin <= 0`,
# which lets a NaN margin through (the loss is then NaN): hence `| (margin != margin)`.
_ANY_MARGIN = FloatOption("margin")
_EPS = FloatOption("eps")
_TRIPLET_MARGIN = FloatOption("margin", "greater than 0", lambda margin: (margin > 0) | (margin != margin))


def _check_target_dtype(loss: str, target: ArrayLike) -> None:
    """Raises `TypeError` unless `target` is real: boolean, integer or floating (torch compares it to ±1)."""
    dtype = jnp.result_type(target)
    if not (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise TypeError(f"{loss}: `target` must be a boolean, integer or floating array; got dtype {dtype}.")


@typed_jit(static_argnames=("reduction",), float_options=(_ANY_MARGIN,))
def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float | jax.Array = 0.0,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Cosine embedding loss, as `torch.nn.functional.cosine_embedding_loss`.

    .. math::
      \cos_i = \frac{\sum_d x_{1,id} x_{2,id}}{\sqrt{(\sum_d x_{1,id}^2 + 10^{-12})(\sum_d x_{2,id}^2 + 10^{-12})}}
      \qquad
      \ell_i = \begin{cases} 1 - \cos_i & t_i = 1 \\ \max(0, \cos_i - \text{margin}) & t_i = -1 \\
                             0 & \text{any other } t_i \end{cases}

    The ``1e-12`` inside each squared norm makes a zero vector's cosine 0 (loss 1 for ``t = 1``); it is float32's
    ``1e-12`` (``9.999999960041972e-13``) in float64 too, as in torch, whose constant is a C++ float. At
    ``cos - margin = 0`` the gradient passes through (torch's `clamp_min`). The target only selects a branch: it
    gets no gradient (JAX returns zeros for it; torch has no graph edge to it). optax has no equivalent
    (`optax.cosine_distance` is ``1 - cos`` without the epsilon or the margin branch).

    Args:
      input1: ``(N, D)`` with a ``(N,)`` target, or ``(D,)`` with a 0-dim target; floating or integer (integers
        compute in float32, as in torch).
      input2: the same number of dimensions as `input1`; the two broadcast against each other (``(N, D)`` with
        ``(N, 1)`` or ``(1, D)`` is accepted).
      target: ``(N,)`` or 0-dim, real; ``1`` for similar pairs, ``-1`` for dissimilar ones. It broadcasts
        against the batch of cosines.
      margin: subtracted from the cosine of dissimilar pairs; any real number (torch suggests [-1, 1]): a Python
        number or a real JAX scalar (may be traced, batched with `jax.vmap`, or differentiated).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The losses (the broadcast of `target` and the batch shape, 0-dim when unbatched) for ``'none'``, else a
      scalar; in the promoted dtype of `input1` and `input2` (float32 for integers).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import cosine_embedding_loss
      >>> x1, x2 = jnp.array([[1., 0.], [1., 1.]]), jnp.array([[1., 1.], [-1., 1.]])
      >>> cosine_embedding_loss(x1, x2, jnp.array([1, -1]), reduction="none")
      Array([0.29289323, 0.        ], dtype=float32)
    """
    loss = "cosine_embedding_loss"
    _checks.check_reduction(loss, reduction)
    target_ndim = jnp.ndim(target)
    if target_ndim > 1:
        raise ValueError(
            f"{loss}: `target` must be 0-D or 1-D (multi-target is not supported); got shape {jnp.shape(target)}."
        )
    if jnp.ndim(input1) != target_ndim + 1 or jnp.ndim(input2) != target_ndim + 1:
        raise ValueError(
            f"{loss}: a {target_ndim}-D `target` expects {target_ndim + 1}-D `input1` and `input2`; got shapes "
            f"{jnp.shape(input1)} and {jnp.shape(input2)}."
        )
    dtype = _checks.floating_dtype(
        loss, integers_to_float32=True, booleans=("input1", "input2"), input1=input1, input2=input2
    )
    _check_target_dtype(loss, target)
    input1, input2, margin = _checks.cast_for_computation(dtype, input1, input2, margin)
    batch = _checks.broadcast_shape(loss, input1=input1.shape, input2=input2.shape)[:-1]
    _checks.broadcast_shape(loss, target=jnp.shape(target), **{"input1/input2 batch": batch})
    product = jnp.sum(input1 * input2, axis=-1)
    squared_norm1 = jnp.sum(input1 * input1, axis=-1) + _COSINE_EPSILON
    squared_norm2 = jnp.sum(input2 * input2, axis=-1) + _COSINE_EPSILON
    cos = product / jnp.sqrt(squared_norm1 * squared_norm2)
    losses = jnp.where(target == 1, 1 - cos, 0) + jnp.where(target == -1, _subgradients.clamp_min(cos - margin, 0), 0)
    return reduce(losses, reduction).astype(dtype)


def _distance(loss: str, first: str, x1: jax.Array, second: str, x2: jax.Array, p: float, eps: jax.Array) -> jax.Array:
    """``‖x1 - x2 + eps‖_p`` over the last axis of the broadcast (0-dim operands: ``|x1 - x2 + eps|``).

    `first`/`second` name the operands in error messages. torch adds `eps` to the difference (not to the norm),
    so the distance of equal vectors is ``‖eps‖_p``, and exactly 0 (with gradient 0) only when ``eps = 0``.
    """
    _checks.broadcast_shape(loss, **{first: jnp.shape(x1), second: jnp.shape(x2)})
    difference = jnp.atleast_1d(x1 - x2 + eps)
    if difference.shape[-1] == 0 and (p < 0 or p == math.inf):
        raise ValueError(
            f"{loss}: the p={p} norm is undefined over an empty last axis (`{first}` {jnp.shape(x1)}, `{second}` "
            f"{jnp.shape(x2)}): it has no identity element."
        )
    return _subgradients.vector_norm(difference, p)


@typed_jit(static_argnames=("p", "keepdim"), float_options=(_EPS,))
def pairwise_distance(
    x1: ArrayLike, x2: ArrayLike, p: float = 2.0, eps: float | jax.Array = 1e-06, keepdim: bool = False
) -> jax.Array:
    r"""Distance between matching rows of `x1` and `x2`, as `torch.nn.functional.pairwise_distance`.

    .. math:: d = \lVert x_1 - x_2 + \epsilon \rVert_p

    over the last axis of the broadcast of `x1` and `x2`; ``eps`` is added to every entry of the difference.
    ``p = 0`` counts non-zero entries, ``p = ±inf`` takes the largest/smallest ``|x_1 - x_2 + \epsilon|``.

    Gradients are torch's `norm` backward: 0 where the difference is a zero vector (possible only with
    ``eps = 0``; plain autodiff gives NaN there), shared equally among tied entries for ``p = ±inf``, 0 for
    ``p = 0`` (see `jaxloss._subgradients.vector_norm`).

    Args:
      x1: any shape, floating or integer (integers compute in float32, as in torch).
      x2: broadcastable with `x1`.
      p: the norm's order, any real number or ``±inf``; ``p < 0`` and ``p = inf`` need a non-empty last axis.
      eps: added to the difference; any real number: a Python number or a real JAX scalar (may be traced,
        batched with `jax.vmap`, or differentiated).
      keepdim: keep the reduced axis (with size 1), except for 0-dim operands.

    Returns:
      The distances, of the broadcast shape without its last axis (0-dim for 0-dim operands); in the promoted
      dtype of `x1` and `x2`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import pairwise_distance
      >>> pairwise_distance(jnp.array([[0., 0.], [1., 1.]]), jnp.array([3., 4.]), eps=0.0)
      Array([5.       , 3.6055512], dtype=float32)
    """
    loss = "pairwise_distance"
    p = _checks.float_option(loss, "p", p)
    dtype = _checks.floating_dtype(loss, integers_to_float32=True, x1=x1, x2=x2)
    x1, x2, eps = _checks.cast_for_computation(dtype, x1, x2, eps)
    distance = _distance(loss, "x1", x1, "x2", x2, p, eps)
    if keepdim and max(x1.ndim, x2.ndim) > 0:
        distance = distance[..., None]
    return distance.astype(dtype)


def _check_triplet_ndim(loss: str, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> None:
    """torch's last check of both triplet losses, after `reduction` and `margin`: equal numbers of dimensions."""
    ndims = tuple(jnp.ndim(x) for x in (anchor, positive, negative))
    if len(set(ndims)) != 1:
        raise ValueError(
            f"{loss}: `anchor`, `positive` and `negative` must have the same number of dimensions; got "
            f"{ndims[0]}-D, {ndims[1]}-D and {ndims[2]}-D."
        )


# How the distances d(a, p), d(a, n), d(p, n) are named in error messages.
_NORM_DISTANCES = ("d(anchor, positive)", "d(anchor, negative)", "d(positive, negative)")
_CUSTOM_DISTANCES = (
    "distance_function(anchor, positive)",
    "distance_function(anchor, negative)",
    "distance_function(positive, negative)",
)


def _triplet_from_distances(
    loss: str,
    names: tuple[str, ...],
    distances: tuple[jax.Array, ...],
    margin: jax.Array,
    failed: jax.Array,
    reduction: Reduction,
) -> jax.Array:
    """``max(0, margin + d(a, p) - d_neg)`` reduced, where ``d_neg = d(a, n)``, or with swap
    ``min(d(a, n), d(p, n))``; NaN where `failed` (a traced margin <= 0).

    `distances` holds ``d(a, p)``, ``d(a, n)`` and, with swap, ``d(p, n)``, named by `names` in error messages;
    they broadcast together, as in torch. The distances and the margin have been through
    `_checks.nan_derivatives_if` already.
    """
    # `names` also names the swap distance, which `distances` holds only with swap.
    _checks.broadcast_shape(loss, **{name: jnp.shape(d) for name, d in zip(names, distances, strict=False)})
    dist_pos, dist_neg, *dist_swap = distances
    if dist_swap:
        # jnp.minimum's derivative at a tie is 1/2 to each side, as torch.minimum's.
        dist_neg = jnp.minimum(dist_neg, dist_swap[0])
    # clamp_min passes the gradient at margin + d(a, p) == d_neg, as torch's clamp_min.
    losses = _subgradients.clamp_min(margin + dist_pos - dist_neg, 0)
    return reduce(_checks.nan_where(failed, losses), reduction)


@typed_jit(static_argnames=("loss", "p", "swap", "reduction"), float_options=(_TRIPLET_MARGIN, _EPS))
def _triplet_margin(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    loss: str,
    margin: float | jax.Array,
    p: float,
    eps: float | jax.Array,
    swap: bool,
    reduction: Reduction,
) -> tuple[jax.Array, _checks.Failures]:
    """Both triplet losses with the p-norm distance, as one jitted computation; `loss` names the caller, which
    has checked `reduction` (the screen has checked a known `margin`). Returns ``(loss, failures)``."""
    _check_triplet_ndim(loss, anchor, positive, negative)
    p = _checks.float_option(loss, "p", p)
    if not isinstance(swap, bool):
        raise TypeError(f"{loss}: `swap` must be a bool; got {swap!r}.")
    dtype = _checks.floating_dtype(loss, integers_to_float32=True, anchor=anchor, positive=positive, negative=negative)
    # The range check on the margin as given (a float64 1e-50 is valid even if it rounds to 0 in float32).
    failures = _TRIPLET_MARGIN.failures(margin)
    failed = _checks.any_failed(failures)
    operands = _checks.cast_for_computation(dtype, anchor, positive, negative, margin, eps)
    anchor, positive, negative, margin, eps = (_checks.nan_derivatives_if(failed, x) for x in operands)
    distances = [
        _distance(loss, "anchor", anchor, "positive", positive, p, eps),
        _distance(loss, "anchor", anchor, "negative", negative, p, eps),
    ]
    if swap:
        distances.append(_distance(loss, "positive", positive, "negative", negative, p, eps))
    losses = _triplet_from_distances(loss, _NORM_DISTANCES, tuple(distances), margin, failed, reduction)
    return losses.astype(dtype), failures


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    margin: float | jax.Array = 1.0,
    p: float = 2.0,
    eps: float | jax.Array = 1e-06,
    swap: bool = False,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Triplet margin loss, as `torch.nn.functional.triplet_margin_loss`.

    .. math::
      \ell_i = \max(0, \text{margin} + d(a_i, p_i) - d(a_i, n_i)), \qquad
      d(x, y) = \lVert x - y + \epsilon \rVert_p

    over the last axis (`pairwise_distance`; note ``eps`` is added to the difference). With ``swap=True``,
    ``d(a, n)`` is replaced by ``min(d(a, n), d(p, n))`` (the distance swap of Balntas et al.).

    Gradients are torch's: the norm's backward of `pairwise_distance` (0 at a zero difference vector, possible
    only with ``eps = 0``; ties of ``p = ±inf`` shared equally), half to each side where ``d(a, n) = d(p, n)``
    under swap, and the full gradient where ``margin + d(a, p) - d(a, n) = 0`` (torch's `clamp_min`). optax has
    no triplet loss.

    A ``margin <= 0`` raises `ValueError` when its value is known (a Python number, or a JAX scalar outside
    `jax.jit` and `jax.vmap`); under them the loss is NaN, and every element of the gradients is NaN.

    Args:
      anchor: ``(N, D)``, or ``(D,)`` unbatched, or any number of batch axes before ``D``; floating or integer
        (integers compute in float32, as in torch).
      positive: the same number of dimensions as `anchor`, broadcastable with it (e.g. ``(1, D)``).
      negative: likewise.
      margin: ``> 0`` (NaN passes, as in torch): a Python number or a real JAX scalar (may be traced, batched with
        `jax.vmap`, or differentiated); a traced margin ``<= 0`` gives a NaN loss and NaN gradients.
      p: the norm's order (see `pairwise_distance`).
      eps: added to the differences; any real number: a Python number or a real JAX scalar (may be traced,
        batched with `jax.vmap`, or differentiated).
      swap: use the distance swap.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The losses (the broadcast batch shape, 0-dim for unbatched input) for ``'none'``, else a scalar; in the
      promoted dtype of the three inputs.

    Raises:
      ValueError: in torch's order, a bad `reduction`, a known ``margin <= 0``, or inputs with different
        numbers of dimensions; inputs or distances that do not broadcast together.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import triplet_margin_loss
      >>> anchor = jnp.array([[0., 0.], [1., 0.]])
      >>> triplet_margin_loss(anchor, anchor + 0.5, anchor + 1.0, eps=0.0, reduction="none")
      Array([0.2928933, 0.2928933], dtype=float32)
    """
    loss = "triplet_margin_loss"
    # Here, before `_triplet_margin`'s screen checks a known margin: torch checks the reduction first.
    _checks.check_reduction(loss, reduction)
    result = _triplet_margin(
        anchor, positive, negative, loss=loss, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction
    )
    return _checks.raise_failed(loss, *result)


@typed_jit(static_argnames=("reduction",), float_options=(_TRIPLET_MARGIN,))
def _triplet_from_custom_distances(
    distances: tuple[ArrayLike, ...], *, margin: float | jax.Array, reduction: Reduction
) -> tuple[jax.Array, _checks.Failures]:
    """The loss from a custom distance function's results, as one jitted computation; returns
    ``(loss, failures)``."""
    loss = "triplet_margin_with_distance_loss"
    dtype = _checks.floating_dtype(
        loss, integers_to_float32=True, booleans=(), **dict(zip(_CUSTOM_DISTANCES, distances, strict=False))
    )
    failures = _TRIPLET_MARGIN.failures(margin)
    failed = _checks.any_failed(failures)
    # The distances carry the NaN derivatives back through the distance function to the inputs.
    *arrays, margin = (
        _checks.nan_derivatives_if(failed, x) for x in _checks.cast_for_computation(dtype, *distances, margin)
    )
    losses = _triplet_from_distances(loss, _CUSTOM_DISTANCES, tuple(arrays), margin, failed, reduction)
    return losses.astype(dtype), failures


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: DistanceFunction | None = None,
    margin: float | jax.Array = 1.0,
    swap: bool = False,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Triplet margin loss with any distance, as `torch.nn.functional.triplet_margin_with_distance_loss`.

    .. math:: \ell_i = \max(0, \text{margin} + d(a_i, p_i) - d(a_i, n_i))

    where ``d`` is `distance_function`, or `pairwise_distance` (``p = 2``, ``eps = 1e-6``) when it is None, which
    makes this exactly `triplet_margin_loss` with its defaults. With ``swap=True``, ``d(a, n)`` is replaced by
    ``min(d(a, n), d(p, n))``, with ``d(p, n) = distance_function(positive, negative)``. Gradients: as
    `triplet_margin_loss` for the margin and the swap; through `distance_function` by JAX's autodiff.

    `distance_function` is called as given, on the arrays as given (eagerly when this is called eagerly, traced
    when it is traced), and the loss is computed from its results: its output shape is the loss's shape for
    ``'none'`` (a ``(N, 1)`` distance gives a ``(N, 1)`` loss). It is deliberately not a static argument of a
    `jax.jit`: a lambda or closure is a new object on every call and would be recompiled every time. Instead,
    the part after the distances is one jitted computation, and under an outer `jax.jit` (or `vmap`/`grad`)
    everything, the distance function included, fuses into one computation; for one compiled eager call, jit the
    caller or pass a jitted distance function. With ``distance_function=None`` the whole loss runs as one jitted
    computation.

    Everything after `negative` is keyword-only, as in torch.

    Args:
      anchor: ``(N, D)``, or ``(D,)`` unbatched, or whatever `distance_function` accepts; with the default
        distance, as in `triplet_margin_loss`.
      positive: the same number of dimensions as `anchor`.
      negative: the same number of dimensions as `anchor`.
      distance_function: a callable mapping two arrays to an array of distances (floating or integer), or None.
      margin: ``> 0`` (NaN passes, as in torch): a Python number or a real JAX scalar (may be traced, batched with
        `jax.vmap`, or differentiated); a traced margin ``<= 0`` gives a NaN loss and NaN gradients.
      swap: use the distance swap (any truthy value, as torch's ``if swap``).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The losses (the broadcast shape of the distances) for ``'none'``, else a scalar; in the promoted dtype of
      the distances (of the inputs with the default distance).

    Raises:
      ValueError: in torch's order, a bad `reduction`, a known ``margin <= 0``, or inputs with different numbers
        of dimensions; distances that do not broadcast together.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import triplet_margin_with_distance_loss
      >>> anchor = jnp.array([[0., 0.], [1., 0.]])
      >>> l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
      >>> triplet_margin_with_distance_loss(anchor, anchor + 0.5, anchor + 1.0, distance_function=l1)
      Array(0., dtype=float32)
    """
    loss = "triplet_margin_with_distance_loss"
    # torch's order: reduction, margin, ndim (the last two in `_triplet_margin`, or here for a custom distance).
    _checks.check_reduction(loss, reduction)
    if distance_function is None:
        result = _triplet_margin(
            anchor, positive, negative, loss=loss, margin=margin, p=2.0, eps=1e-06, swap=bool(swap), reduction=reduction
        )
        return _checks.raise_failed(loss, *result)
    if not callable(distance_function):
        raise TypeError(f"{loss}: `distance_function` must be callable or None; got {distance_function!r}.")
    # The screen `_triplet_from_custom_distances` applies, here already: before the ndim check and before the
    # distance function sees the inputs.
    margin = _jit.screen_float_option(loss, _TRIPLET_MARGIN, margin)
    _check_triplet_ndim(loss, anchor, positive, negative)
    distances = [distance_function(anchor, positive), distance_function(anchor, negative)]
    if swap:
        distances.append(distance_function(positive, negative))
    return _checks.raise_failed(
        loss, *_triplet_from_custom_distances(tuple(distances), margin=margin, reduction=reduction)
    )
