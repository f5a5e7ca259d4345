"""Connectionist temporal classification: ctc_loss."""

import functools
from typing import NoReturn

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._jit import typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import Lengths, Reduction

_LOSS = "ctc_loss"
_NEG_INF = -jnp.inf


def _log_add3(a: jax.Array, b: jax.Array, c: jax.Array) -> jax.Array:
    """``log(exp(a) + exp(b) + exp(c))`` as torch's CPU kernel computes it: shifted by the largest term, with the
    shift 0 when all three are -inf (so -inf, never -inf - -inf = NaN, comes out)."""
    shift = jnp.maximum(jnp.maximum(a, b), c)
    shift = jnp.where(shift == _NEG_INF, 0.0, shift)
    return jnp.log(jnp.exp(a - shift) + jnp.exp(b - shift) + jnp.exp(c - shift)) + shift


def _shift(x: jax.Array, k: int, fill: float) -> jax.Array:
    """`x` moved `k` places along its last axis (right for k > 0, left for k < 0), `fill` coming in."""
    length = x.shape[-1]
    pad = jnp.full(x.shape[:-1] + (abs(k),), fill, x.dtype)
    if k > 0:
        return jnp.concatenate([pad, x], axis=-1)[..., :length]
    return jnp.concatenate([x, pad], axis=-1)[..., -length:]


def _label_log_probs(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """``out[t, n, s] = log_probs[t, n, labels[n, s]]``, (T, N, L)."""
    steps = log_probs.shape[0]
    return jnp.take_along_axis(log_probs, jnp.broadcast_to(labels, (steps, *labels.shape)), axis=2)


def _emissions(log_probs: jax.Array, labels: jax.Array, target_lengths: jax.Array) -> jax.Array:
    """`_label_log_probs` on each sample's extended labels, -inf past its last position ``2 * target_length``
    (so no alignment can use the padding)."""
    in_path = jnp.arange(labels.shape[1]) <= 2 * target_lengths[:, None]
    return jnp.where(in_path, _label_log_probs(log_probs, labels), _NEG_INF)


def _skips(labels: jax.Array) -> jax.Array:
    """Where the transition ``s - 2 -> s`` is allowed: between two different labels (never between blanks, and
    never between repeated labels, which need a blank in between)."""
    return labels != _shift(labels, 2, -1)


def _alphas(lp: jax.Array, skip: jax.Array) -> jax.Array:
    """The alpha recursion in log space, torch's: ``alpha[t, s] = log_add(alpha[t-1, s], alpha[t-1, s-1],
    alpha[t-1, s-2] where skip[s]) + lp[t, s]``, starting on the first two positions. (T, B, L)."""
    first = jnp.where(jnp.arange(lp.shape[2]) <= 1, lp[0], _NEG_INF)

    def step(previous: jax.Array, lp_t: jax.Array) -> tuple[jax.Array, jax.Array]:
        jump = jnp.where(skip, _shift(previous, 2, _NEG_INF), _NEG_INF)
        alpha = _log_add3(previous, _shift(previous, 1, _NEG_INF), jump) + lp_t
        return alpha, alpha

    _, later = jax.lax.scan(step, first, lp[1:])
    return jnp.concatenate([first[None], later])


def _negative_log_likelihoods(alpha: jax.Array, input_lengths: jax.Array, target_lengths: jax.Array) -> jax.Array:
    """The loss from the alphas: end on the final blank or the last label at frame input_length - 1 (torch's
    two-term log-add); with no frames, 0 for an empty target and +inf for any other (torch's special case)."""
    last = jnp.take_along_axis(alpha, jnp.maximum(input_lengths - 1, 0)[None, :, None], axis=0)[0]
    end = 2 * target_lengths[:, None]
    on_blank = jnp.take_along_axis(last, end, axis=1)[:, 0]
    on_label = jnp.where(target_lengths > 0, jnp.take_along_axis(last, jnp.maximum(end - 1, 0), axis=1)[:, 0], _NEG_INF)
    log_likelihood = _log_add3(on_blank, on_label, jnp.full_like(on_blank, _NEG_INF))
    log_likelihood = jnp.where(input_lengths == 0, jnp.where(target_lengths == 0, 0.0, _NEG_INF), log_likelihood)
    return -log_likelihood


def _reverse(x: jax.Array, input_lengths: jax.Array, target_lengths: jax.Array) -> jax.Array:
    """Each sample's (T, N, L) array reversed in time within its frames and in position within its path
    ``0 .. 2 * target_length``; -inf elsewhere. An involution on that region."""
    steps, batch, length = x.shape
    frames = jnp.arange(steps)[:, None, None]
    positions = jnp.arange(length)
    times = jnp.broadcast_to(jnp.clip(input_lengths[:, None] - 1 - frames, 0, steps - 1), x.shape)
    places = jnp.broadcast_to(jnp.clip(2 * target_lengths[:, None] - positions, 0, length - 1), x.shape)
    reversed_ = jnp.take_along_axis(jnp.take_along_axis(x, times, axis=0), places, axis=2)
    inside = (frames < input_lengths[:, None]) & (positions <= 2 * target_lengths[:, None])
    return jnp.where(inside, reversed_, _NEG_INF)


def _forward_backward(
    log_probs: jax.Array, labels: jax.Array, input_lengths: jax.Array, target_lengths: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Alphas and torch's betas (T, N, L), from one scan over the batch and its reversal.

    torch's beta recursion, ``beta[t, s] = log_add(beta[t+1, s], beta[t+1, s+1], beta[t+1, s+2] where allowed)
    + lp[t, s]`` from the last frame's final blank and last label, is the alpha recursion of the sample reversed
    in time and in path position (the skip rule is symmetric), with the same terms in the same order. Like
    torch's, beta at frame t includes the emission at t, so ``alpha + beta`` counts ``log_probs[t]`` twice.
    """
    batch, length = labels.shape
    lp = _emissions(log_probs, labels, target_lengths)
    places = jnp.clip(2 * target_lengths[:, None] - jnp.arange(length), 0, length - 1)
    reversed_labels = jnp.take_along_axis(labels, places, axis=1)
    both = _alphas(
        jnp.concatenate([lp, _reverse(lp, input_lengths, target_lengths)], axis=1),
        jnp.concatenate([_skips(labels), _skips(reversed_labels)]),
    )
    return both[:, :batch], _reverse(both[:, batch:], input_lengths, target_lengths)


def _collect(values: jax.Array, labels: jax.Array, classes: int) -> jax.Array:
    """``out[t, n, c] = sum(values[t, n, s] for s with labels[n, s] == c)``, by a scatter-add (no one-hot)."""
    steps, batch, _ = values.shape
    index = (jnp.arange(steps)[:, None, None], jnp.arange(batch)[None, :, None], labels[None])
    return jnp.zeros((steps, batch, classes), values.dtype).at[index].add(values)


@jax.custom_jvp
def _first_order_only(gradient: jax.Array) -> jax.Array:
    """Identity whose derivative raises: torch's CTC backward is not differentiable either."""
    return gradient


@_first_order_only.defjvp
def _first_order_only_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> NoReturn:
    raise NotImplementedError(
        "ctc_loss: second-order derivatives are not supported (torch's CTC backward is not differentiable)."
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _negative_log_likelihood(
    log_probs: jax.Array, labels: jax.Array, input_lengths: jax.Array, target_lengths: jax.Array, zero_infinity: bool
) -> jax.Array:
    """Per-sample CTC losses (N,) with torch's hand-written gradient; infinite losses are 0 if `zero_infinity`."""
    alpha = _alphas(_emissions(log_probs, labels, target_lengths), _skips(labels))
    nll = _negative_log_likelihoods(alpha, input_lengths, target_lengths)
    return jnp.where(zero_infinity & (nll == jnp.inf), 0.0, nll)


def _negative_log_likelihood_fwd(
    log_probs: jax.Array, labels: jax.Array, input_lengths: jax.Array, target_lengths: jax.Array, zero_infinity: bool
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    alpha, beta = _forward_backward(log_probs, labels, input_lengths, target_lengths)
    nll = _negative_log_likelihoods(alpha, input_lengths, target_lengths)
    loss = jnp.where(zero_infinity & (nll == jnp.inf), 0.0, nll)
    return loss, (log_probs, labels, input_lengths, target_lengths, nll, alpha, beta)


def _negative_log_likelihood_bwd(
    zero_infinity: bool, residuals: tuple[jax.Array, ...], cotangent: jax.Array
) -> tuple[jax.Array, None, None, None]:
    log_probs, labels, input_lengths, target_lengths, nll, alpha, beta = residuals
    steps, _, classes = log_probs.shape
    frames = jnp.arange(steps)[:, None, None]
    positions = jnp.arange(labels.shape[1])
    end = 2 * target_lengths[:, None]
    used = (frames < input_lengths[:, None]) & (positions <= end)
    # torch's quirk: at the last frame it *assigns* the last label's term over the final blank's instead of
    # adding them, which matters when the target ends with the blank index itself; the blank's term is dropped.
    last_label = jnp.take_along_axis(labels, jnp.maximum(end - 1, 0), axis=1)
    overwritten = (target_lengths[:, None] > 0) & (last_label == labels[:, :1])  # labels[:, 0] is the blank
    used &= ~((frames == input_lengths[:, None] - 1) & (positions == end) & overwritten)
    # torch collects log(alpha * beta) per class and returns exp(lp) - exp(collected + nll - lp). Per position
    # s, alpha * beta / (exp(lp) * likelihood) is the alignment posterior (<= 1), so summing
    # exp(log alpha + log beta + nll - lp) per class is torch's value without overflow and, unlike a per-frame
    # shift, without underflow for classes far below the others.
    nll_ = nll[None, :, None]
    terms = jnp.exp(alpha + beta + nll_ - _label_log_probs(log_probs, labels))
    posterior = _collect(jnp.where(used, terms, 0.0), labels, classes)
    # torch evaluates exp(-inf + nll - lp) for a class no alignment passes through: 0, or NaN where the sample
    # is infeasible (nll = inf) or lp = -inf. Those are the NaN gradients torch returns; keep them.
    unreachable = jnp.exp(_NEG_INF + nll_ - log_probs)
    gradient = (jnp.exp(log_probs) - (posterior + unreachable)) * cotangent[None, :, None]
    keep = frames < input_lengths[None, :, None]
    if zero_infinity:
        keep = keep & (nll_ != jnp.inf)
    gradient = _first_order_only(jnp.where(keep, gradient, 0.0))
    return gradient, None, None, None


_negative_log_likelihood.defvjp(_negative_log_likelihood_fwd, _negative_log_likelihood_bwd)


def _check_lengths(name: str, lengths: ArrayLike, batch: int) -> jax.Array:
    """`lengths` as a (N,) integer array: one entry per sample, 0-dim allowed for a single sample."""
    dtype = jnp.result_type(lengths)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{_LOSS}: `{name}` must be an integer array or a list of ints; got dtype {dtype}.")
    lengths = jnp.asarray(lengths)
    if lengths.ndim > 1 or lengths.size != batch:
        raise ValueError(
            f"{_LOSS}: `{name}` must hold one length per batch element ({batch}); got shape {lengths.shape}."
        )
    return lengths.reshape(batch)


def _padded_labels(
    targets: jax.Array, target_lengths: jax.Array, batch: int, classes: int, width: int | None
) -> tuple[jax.Array, jax.Array, jax.Array, _checks.Failures]:
    """Targets as a padded (N, W) int32 matrix of valid class indices, with the value checks on them.

    Returns the matrix (entries past a sample's length are arbitrary valid indices), the target lengths clipped
    to [0, W] as int32, a per-sample flag for invalid data, and the failure flags.
    """
    dtype = jnp.result_type(targets)
    if not any(jnp.issubdtype(dtype, kind) for kind in (jnp.integer, jnp.floating, jnp.bool_)):
        raise TypeError(f"{_LOSS}: `targets` must be an array of class indices; got dtype {dtype}.")
    if targets.ndim not in (1, 2):
        raise ValueError(f"{_LOSS}: `targets` must be padded (N, S) or concatenated 1-D; got shape {targets.shape}.")
    # torch converts floating and boolean targets to integers (floats truncated toward zero); the range check
    # below runs before the conversion to int32, so that no large label wraps around into the range.
    if jnp.issubdtype(dtype, jnp.floating):
        targets = jnp.trunc(targets)
    elif dtype == jnp.bool_:
        targets = targets.astype(jnp.int32)
    negative_length = target_lengths < 0
    failures = {"`target_lengths` must be non-negative": jnp.any(negative_length)}
    if targets.ndim == 2:
        if targets.shape[0] != batch:
            raise ValueError(
                f"{_LOSS}: padded `targets` must have one row per batch element ({batch}); got shape {targets.shape}."
            )
        width = targets.shape[1]
        too_long = target_lengths > width
        failures[f"`target_lengths` must be at most the padded target width {width}"] = jnp.any(too_long)
        invalid = negative_length | too_long
        lengths = jnp.clip(target_lengths, 0, width).astype(jnp.int32)
        padded = targets
    else:
        # Concatenated: sample n's labels start at the sum of the earlier lengths. The padded width is the
        # longest target when the lengths are known (see `ctc_loss`), else the total, the most it can be.
        total = targets.shape[0]
        width = total if width is None else width
        mismatch = jnp.sum(target_lengths) != total
        failures[f"`targets` must hold sum(target_lengths) labels when 1-D (concatenated); it holds {total}"] = mismatch
        invalid = negative_length | mismatch | (target_lengths > width)
        lengths = jnp.clip(target_lengths, 0, width).astype(jnp.int32)
        starts = jnp.cumsum(lengths) - lengths
        if width == 0:
            padded = jnp.zeros((batch, 0), targets.dtype)
        else:
            padded = targets[jnp.clip(starts[:, None] + jnp.arange(width), 0, total - 1)]
    # Labels outside [0, C) make torch read (and its backward write) out of bounds; only the first
    # `target_length` entries of a row are labels, the rest is padding that may hold anything.
    used = jnp.arange(width) < lengths[:, None]
    bad_label = jnp.any(used & ((padded < 0) | (padded >= classes)), axis=1)
    failures[f"`targets` must hold class indices in [0, {classes}) within `target_lengths`"] = jnp.any(bad_label)
    return jnp.clip(padded, 0, classes - 1).astype(jnp.int32), lengths, invalid | bad_label, failures


@typed_jit(static_argnames=("blank", "reduction", "zero_infinity", "width"))
def _ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int,
    reduction: Reduction,
    zero_infinity: bool,
    width: int | None,
) -> tuple[jax.Array, _checks.Failures]:
    """The jitted loss: static checks, then `(loss, failures)` (see `_checks`)."""
    _checks.check_reduction(_LOSS, reduction)
    if isinstance(blank, (bool, np.bool_)) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"{_LOSS}: `blank` must be an int; got {blank!r}.")
    if not isinstance(zero_infinity, (bool, np.bool_)):
        raise TypeError(f"{_LOSS}: `zero_infinity` must be a bool; got {zero_infinity!r}.")
    dtype = _checks.floating_dtype(_LOSS, log_probs=log_probs)
    (log_probs,) = _checks.cast_for_computation(dtype, log_probs)
    if log_probs.ndim not in (2, 3):
        raise ValueError(f"{_LOSS}: `log_probs` must have shape (T, N, C) or (T, C); got {log_probs.shape}.")
    if log_probs.size == 0:
        raise ValueError(f"{_LOSS}: `log_probs` must not be empty; got shape {log_probs.shape}.")
    batched = log_probs.ndim == 3
    if not batched:
        log_probs = log_probs[:, None]
    steps, batch, classes = log_probs.shape
    _checks.check_option(_LOSS, "blank", blank, 0 <= blank < classes, f"a class index in [0, {classes})")
    input_lengths = _check_lengths("input_lengths", input_lengths, batch)
    target_lengths = _check_lengths("target_lengths", target_lengths, batch)

    labels, lengths, invalid, failures = _padded_labels(jnp.asarray(targets), target_lengths, batch, classes, width)
    negative_input = input_lengths < 0
    long_input = input_lengths > steps
    failures["`input_lengths` must be non-negative"] = jnp.any(negative_input)
    failures[f"`input_lengths` must be at most the number of frames T = {steps}"] = jnp.any(long_input)
    invalid = invalid | negative_input | long_input

    # Extended labels: blank, l1, blank, l2, ..., blank.
    blanks = jnp.full_like(labels, blank)
    extended = jnp.stack([blanks, labels], axis=-1).reshape(batch, -1)
    extended = jnp.concatenate([extended, jnp.full((batch, 1), blank, jnp.int32)], axis=1)

    frames = jnp.clip(input_lengths, 0, steps).astype(jnp.int32)
    # Outside the custom_vjp: its hand-written backward then gets multiplied by NaN when a check failed.
    log_probs = _checks.nan_derivatives_if(_checks.any_failed(failures), log_probs)
    loss = _negative_log_likelihood(log_probs, extended, frames, lengths, zero_infinity)
    loss = _checks.nan_where(invalid, loss)
    if reduction == "mean":  # torch: mean over the batch of loss / max(target_length, 1)
        loss = loss / jnp.maximum(target_lengths, 1).astype(loss.dtype)
    loss = reduce(loss if batched else loss[0], reduction)
    return loss.astype(dtype), failures


def _as_lengths(lengths: Lengths) -> ArrayLike:
    """Python lists/tuples of lengths (torch's other accepted form) as arrays; arrays pass through."""
    if isinstance(lengths, (list, tuple)):
        return jnp.asarray(lengths) if len(lengths) else jnp.zeros((0,), jnp.int32)
    return lengths


def _concatenated_width(targets: ArrayLike, target_lengths: ArrayLike) -> int | None:
    """For 1-D targets with known lengths, the longest target (the padded width needed); else None."""
    known = _checks.concrete_value(target_lengths)
    if np.ndim(targets) != 1 or known is None or not np.issubdtype(known.dtype, np.integer):
        return None
    return int(min(max(np.max(known, initial=0), 0), np.shape(targets)[0]))


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    reduction: Reduction = "mean",
    zero_infinity: bool = False,
) -> jax.Array:
    r"""Connectionist temporal classification loss, as `torch.nn.functional.ctc_loss`.

    The negative log-likelihood of the target sequence under all its alignments to the input frames: paths of
    length ``T_n`` (the input length) through the extended labels ``blank, y_1, blank, y_2, ..., y_S, blank``
    that move 0 or 1 place per frame, or 2 to skip a blank between two *different* labels (repeated labels need
    a blank between them):

    .. math::
      \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t < T_n} \exp(\mathrm{lp}[t, n, \pi_t])

    computed with torch's alpha recursion in log space, a `jax.lax.scan` over time vectorised over the batch and
    the extended labels (under differentiation, the alpha and beta recursions share one scan). A target that no
    alignment fits (longer than the input, or repeats without room for the blanks) gives ``+inf``; an empty target gives
    ``-sum_t lp[t, n, blank]``; zero input frames give 0 for an empty target, else ``+inf``. ``log_probs`` are
    not checked to be normalised (as in torch).

    **Gradient convention (torch's, pytorch issue 52241).** The gradient with respect to ``log_probs`` is
    torch's hand-written one, ``exp(lp[t, n, c]) - posterior[t, n, c]`` (the posterior probability that the
    alignment emits class ``c`` at frame ``t``), times the cotangent, for frames ``t < input_lengths[n]``, and 0
    for later frames. This is *not* the partial derivative of the value (which is ``-posterior``): it is the
    gradient with respect to the logits ``z`` of ``log_probs = log_softmax(z)``. Composed with a
    `jax.nn.log_softmax` (how CTC is used) both conventions give the same, correct, gradient with respect to the
    logits: ``jax.grad`` of ``ctc_loss(jax.nn.log_softmax(z), ...)`` equals torch's. Samples whose loss is
    ``+inf`` get NaN gradients (torch's ``exp(-inf + inf)``), as do entries where ``log_probs`` is ``-inf``.
    When a target ends with the blank index itself, torch's backward drops the final blank's share of the last
    frame (it overwrites instead of adding); that is reproduced too. Forward-mode (`jax.jvp`, `jax.jacfwd`) and
    second-order derivatives are not supported (nor are they in torch): they raise.

    Compared with `optax.ctc_loss`: optax takes batch-first logits ``(B, T, K)`` and log-softmaxes them
    itself, describes lengths by 0/1 padding masks, uses ``log_epsilon = -1e5`` for ``log 0`` (so infeasible
    targets give a large finite loss instead of ``+inf``) and returns per-sequence losses without reduction.
    On normalised log-probabilities its values equal this loss's with ``reduction='none'``, and its gradient
    with respect to its logits equals this loss's gradient.

    Data checks (value checks): negative lengths, an input length above ``T``, a padded target length above
    ``S``, concatenated targets whose length is not ``sum(target_lengths)`` (torch raises for all of these), and
    target labels outside ``[0, C)`` within the target lengths (torch reads out of bounds there and returns a
    meaningless value, or crashes) raise `ValueError` eagerly; under `jax.jit`/`jax.vmap` the affected losses
    are NaN instead (all of them for a concatenation of the wrong length), and so is every element of the
    gradient. Padding past a target's length is never read and may hold anything.

    Args:
      log_probs: log-probabilities ``(T, N, C)``, time first, or unbatched ``(T, C)``; floating.
      targets: class indices, padded ``(N, S)`` (``S >= max(target_lengths)``) or the targets concatenated
        into one 1-D array of length ``sum(target_lengths)``; unbatched: ``(S,)`` is the concatenated form, so
        it must hold exactly ``target_length`` labels, or ``(1, S)`` padded. int32 or int64; as in torch,
        floating and boolean targets are converted to integers (truncated). The blank index may appear.
        Under `jax.jit` with unknown lengths, concatenated targets are padded to their total length: padded
        targets are faster there.
      input_lengths: frames used per sample ``(N,)`` (``<= T``), 0-dim allowed for a single sample; an
        integer array (int32 or int64) or a list/tuple of ints (a Python int counts as a 0-dim array).
      target_lengths: labels per sample ``(N,)``, same forms as `input_lengths`.
      blank: the blank class index in ``[0, C)``.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'mean'`` is the mean over the batch of
        ``loss_n / max(target_length_n, 1)``.
      zero_infinity: replace infinite losses, and their gradients, by 0.

    Returns:
      The per-sample losses ``(N,)`` (0-dim unbatched) for ``'none'``, else a scalar; in ``log_probs``'s dtype
      (float16/bfloat16 inputs are computed in float32).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxloss.functional import ctc_loss
      >>> log_probs = jax.nn.log_softmax(jnp.zeros((4, 1, 3)))  # uniform over blank, 1, 2 at 4 frames
      >>> # "1 1" has 5 alignments to 4 frames (1-1-, 1-11, 11-1, 1--1, -1-1), of probability 3**-4 each:
      >>> ctc_loss(log_probs, jnp.array([[1, 1]]), jnp.array([4]), jnp.array([2]), reduction="none")
      Array([2.7850113], dtype=float32)
      >>> float(jnp.log(81 / 5))
      2.785011...
    """
    input_lengths, target_lengths = _as_lengths(input_lengths), _as_lengths(target_lengths)
    loss, failures = _ctc_loss(
        log_probs,
        targets,
        input_lengths,
        target_lengths,
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
        width=_concatenated_width(targets, target_lengths),
    )
    return _checks.raise_failed(_LOSS, loss, failures)
