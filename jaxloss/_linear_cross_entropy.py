"""Fused linear layer and cross-entropy: linear_cross_entropy (new in torch 2.13) and its options.

Two paths compute the same loss:

* without `options`, the logits ``input · linear_weightᵀ + linear_bias`` are computed whole and handed to
  `cross_entropy`'s own implementation;
* with `options` (a `LinearCrossEntropyOptions`), the batch is cut into chunks of rows, and each chunk's logits
  are computed and reduced by `_classification.index_losses` (or the probability-target losses) under
  `jax.checkpoint` inside `lax.map`: the forward pass keeps only a chunk's logits at a time, and the backward
  pass recomputes them chunk by chunk instead of storing them. Neither holds the ``(N, C)`` logits.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks, _classification
from jaxloss._classification import IndexLosses, check_class_weight, index_losses, reduce_index_losses
from jaxloss._jit import typed_jit
from jaxloss._typing import Reduction

_NAME = "linear_cross_entropy"
AccPolicy: TypeAlias = Literal["auto", "accurate", "balanced", "compact"]
_ACC_POLICIES = get_args(AccPolicy)
_ACC_DTYPES = tuple(np.dtype(d) for d in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))


@dataclasses.dataclass(frozen=True)
class LinearCrossEntropyOptions:
    """`torch.nn.LinearCrossEntropyOptions`: opts `linear_cross_entropy` into its chunked, memory-saving path.

    Same fields, order, defaults and validation (`ValueError`) as torch's. What they mean in JAX:

    * `batch_chunk_size` and `chunking_method` choose the rows per chunk exactly as torch resolves them (see
      `chunk_size`). By default (``chunking_method='auto'``, no `batch_chunk_size`) a chunk's logits take
      between half and all of the memory of the ``(N, in_features)`` input.
    * `acc_policy` and `acc_dtype` are validated and otherwise ignored. In torch they pick which
      intermediates are kept in a wider dtype and whether a weight-gradient scratch buffer exists; in XLA the
      compiler assigns buffers, and jaxloss always computes in one dtype: float32 for float16/bfloat16 inputs
      (what torch's ``'auto'`` picks on CPU and recent GPUs), the input's dtype otherwise. A 16-bit
      `acc_dtype` therefore gives float32 accuracy, not torch's 16-bit accumulation.
    * `allow_retain_graph` is validated and ignored: it lets torch's precomputed gradient buffers survive a
      second ``backward()``. A JAX gradient is a pure function, evaluated as often as wanted.

    Unlike torch's chunked op, jaxloss's chunked path is ordinary JAX (``lax.map`` of a ``jax.checkpoint``-ed
    chunk): `jax.jit`, `jax.vmap`, higher-order and forward-mode derivatives all work, and it covers every
    case of the unchunked path (label smoothing, K-dimensional weights, probability targets, any integer
    target dtype), so it never falls back (and never warns that it does).

    Example:
      >>> from jaxloss.nn import LinearCrossEntropyOptions
      >>> LinearCrossEntropyOptions().chunk_size(8192, in_features=512, num_classes=32768)
      64
    """

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: AccPolicy = "auto"
    acc_dtype: DTypeLike | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.acc_policy not in _ACC_POLICIES:
            raise ValueError(f"{name}: `acc_policy` must be one of {_ACC_POLICIES}; got {self.acc_policy!r}.")
        if self.chunking_method is not None and self.chunking_method != "auto":
            method, colon, factor = str(self.chunking_method).partition(":")
            if not (method == "aspect_ratio" and (not colon or (factor.isdigit() and int(factor) > 0))):
                raise ValueError(
                    f"{name}: `chunking_method` must be 'auto', 'aspect_ratio', 'aspect_ratio:N' (N >= 1) or "
                    f"None; got {self.chunking_method!r}."
                )
        size = self.batch_chunk_size
        if not (size is None or (isinstance(size, int) and not isinstance(size, bool) and size > 0)):
            raise ValueError(f"{name}: `batch_chunk_size` must be a positive int or None; got {size!r}.")
        if self.acc_dtype is not None:
            try:
                supported = np.dtype(self.acc_dtype) in _ACC_DTYPES
            except TypeError:
                supported = False
            if not supported:
                raise ValueError(
                    f"{name}: `acc_dtype` must be None or one of float16, bfloat16, float32, float64; got "
                    f"{self.acc_dtype!r}."
                )

    def chunk_size(self, num_rows: int, in_features: int, num_classes: int) -> int:
        """The rows per chunk for a batch of `num_rows` rows, resolved as torch's ``_adjust`` resolves it.

        * ``chunking_method='auto'``: ``'aspect_ratio:2'``, or `batch_chunk_size` when it is given. (torch's
          pick for every device and dtype but 16-bit inputs on CPU, where it picks ``'aspect_ratio'``.)
        * ``'aspect_ratio:k'`` (``'aspect_ratio'`` is k = 1): ``next_pow2(ceil(N / ceil(C / in))) // k``
          rows, at most N, so that a chunk's ``(rows, C)`` logits take 1/k to 2/k of the memory of the
          ``(N, in)`` input (rounding up to a power of 2). A `batch_chunk_size` that disagrees raises
          `ValueError`, as in torch.
        * None: `batch_chunk_size` (at most N), or the whole batch in one chunk when it is None too.

        Never less than 1 row.

        Args:
          num_rows: N, the batch size (1 for an unbatched input).
          in_features: the input's last dimension.
          num_classes: the logits per row: C, or ``C · d1 ··· dk`` with a K-dimensional `linear_weight`.
        """
        method = self.chunking_method
        if method == "auto":
            method = None if self.batch_chunk_size is not None else "aspect_ratio:2"
        size = num_rows if self.batch_chunk_size is None else min(self.batch_chunk_size, num_rows)
        if method is not None:
            factor = int(method.partition(":")[2] or 1)
            # Zero-sized inputs or classes would divide by zero in torch's formula: count them as 1.
            expansion = -(-max(num_classes, 1) // max(in_features, 1))
            rows = -(-num_rows // expansion)
            size = min((1 << (rows - 1).bit_length()) // factor, num_rows)
            if self.batch_chunk_size is not None and self.batch_chunk_size != size:
                raise ValueError(
                    f"{_NAME}: `options`: batch_chunk_size (={self.batch_chunk_size}) and chunking_method "
                    f"({method!r}) give different chunk sizes ({self.batch_chunk_size} vs {size}); pass only one."
                )
        return max(1, size)


def torch_linear_init(
    key: jax.Array, in_features: int, out_size: int, *, bias: bool, dtype: DTypeLike | None = None
) -> tuple[jax.Array, jax.Array | None]:
    """Parameters of a fresh ``torch.nn.Linear(in_features, out_size, bias)``: both U(−1/√in, 1/√in).

    (torch's Kaiming-uniform initialisation with ``a = √5`` is exactly this bound; a layer without inputs
    gets a zero bound, as in torch.)

    Args:
      key: a JAX PRNG key.
      in_features: the layer's inputs.
      out_size: its outputs.
      bias: whether to draw a bias.
      dtype: the parameters' floating dtype; float32 (torch's default) when None.

    Returns:
      ``(weight, bias)``: weight ``(out_size, in_features)``, bias ``(out_size,)`` or None.
    """
    dtype = jnp.float32 if dtype is None else dtype
    bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
    weight_key, bias_key = jax.random.split(key)
    weight = jax.random.uniform(weight_key, (out_size, in_features), dtype, -bound, bound)
    return weight, (jax.random.uniform(bias_key, (out_size,), dtype, -bound, bound) if bias else None)


def _check_linear(input: jax.Array, linear_weight: jax.Array, linear_bias: jax.Array | None) -> tuple[int, ...]:
    """Checks the linear layer's operands as torch does; returns the logits' shape ``(N, C, d1, ..., dk)``."""
    _checks.floating_dtype(_NAME, input=input)
    # torch's matmul and addmm do not promote.
    _checks.check_same_dtype(_NAME, "input", input, "linear_weight", linear_weight)
    if linear_bias is not None:
        _checks.check_same_dtype(_NAME, "input", input, "linear_bias", linear_bias)
    if input.ndim not in (1, 2):
        raise ValueError(f"{_NAME}: `input` must have shape (in_features,) or (N, in_features); got {input.shape}.")
    if linear_weight.ndim < 2:
        raise ValueError(
            f"{_NAME}: `linear_weight` must have shape (C, in_features) or (C, d1, ..., dk, in_features); "
            f"got {linear_weight.shape}."
        )
    if linear_weight.shape[-1] != input.shape[-1]:
        raise ValueError(
            f"{_NAME}: `linear_weight`'s last dimension must be `input`'s, in_features = {input.shape[-1]}; "
            f"got shape {linear_weight.shape}."
        )
    class_shape = linear_weight.shape[:-1]
    if linear_bias is not None and linear_bias.shape != class_shape:
        raise ValueError(
            f"{_NAME}: `linear_bias` must have shape {class_shape} (`linear_weight`'s without in_features); "
            f"got {linear_bias.shape}."
        )
    if len(class_shape) > 1 and input.ndim == 1:
        raise ValueError(
            f"{_NAME}: a K-dimensional `linear_weight` {linear_weight.shape} needs a batched `input` "
            f"(N, {input.shape[-1]}); got {input.shape}."
        )
    return input.shape[:-1] + class_shape


def _holds_probabilities(target: jax.Array, logits_shape: tuple[int, ...]) -> bool:
    """Checks `target` and says whether it holds class probabilities (torch's rule: the logits' shape)."""
    if target.shape == logits_shape:
        if not jnp.issubdtype(target.dtype, jnp.floating):
            raise TypeError(
                f"{_NAME}: a `target` of the logits' shape {logits_shape} holds class probabilities and must be "
                f"floating-point; got dtype {target.dtype}."
            )
        return True
    index_shape = logits_shape[:1] + logits_shape[2:] if len(logits_shape) > 1 else ()
    if target.shape != index_shape:
        raise ValueError(
            f"{_NAME}: `target` must be class indices of shape {index_shape} or class probabilities of the "
            f"logits' shape {logits_shape} (`input`'s batch, then `linear_weight`'s classes and out_features); "
            f"got shape {target.shape}."
        )
    _checks.check_index_dtype(_NAME, "target", target)
    return False


def _logits(input: jax.Array, linear_weight: jax.Array, linear_bias: jax.Array | None) -> jax.Array:
    """``input · linear_weightᵀ + linear_bias``, shape ``(N, C, d1, ..., dk)``, in the computation dtype.

    A dot product over in_features at full float32/float64 precision (no TF32 on GPUs: torch's default).
    16-bit operands are multiplied as they are and accumulated in float32: their products are exact in
    float32, so this equals casting them first, without a float32 copy of the weight.
    """
    dtype = _checks.computation_dtype(input.dtype)
    logits = jax.lax.dot_general(
        input,
        linear_weight,
        (([input.ndim - 1], [linear_weight.ndim - 1]), ([], [])),
        precision=jax.lax.Precision.HIGHEST,
        preferred_element_type=dtype,
    )
    return logits if linear_bias is None else logits + linear_bias.astype(dtype)


def _map_row_chunks(chunk_fn: Callable[..., Any], arrays: tuple[jax.Array, ...], chunk_rows: int) -> Any:
    """``lax.map`` of ``jax.checkpoint(chunk_fn)`` over consecutive chunks of `chunk_rows` rows of `arrays`.

    `chunk_fn(*chunks, valid)` gets each array's rows and a boolean ``(chunk_rows,)`` mask: the last chunk
    is padded with zero rows, which `valid` marks False (one compiled body for every chunk, no row dropped).
    Under `jax.checkpoint` the forward pass saves only the chunk inputs, and the backward pass recomputes
    each chunk's intermediates (its logits) when it reaches that chunk. Returns the stacked outputs, one
    leading entry per chunk.
    """
    num_rows = arrays[0].shape[0]
    num_chunks = -(-num_rows // chunk_rows)
    padding = num_chunks * chunk_rows - num_rows

    def split(array: jax.Array) -> jax.Array:
        array = jnp.pad(array, [(0, padding)] + [(0, 0)] * (array.ndim - 1))
        return array.reshape(num_chunks, chunk_rows, *array.shape[1:])

    valid = (jnp.arange(num_chunks * chunk_rows) < num_rows).reshape(num_chunks, chunk_rows)
    # prevent_cse=False, as JAX advises inside scan: the loop already keeps XLA from merging the backward
    # pass's recomputation into the forward pass.
    checkpointed = jax.checkpoint(lambda chunk: chunk_fn(*chunk), prevent_cse=False)
    return jax.lax.map(checkpointed, (*(split(a) for a in arrays), valid))


def _unchunk(stacked: jax.Array, num_rows: int) -> jax.Array:
    """The per-row results of `_map_row_chunks` back as one ``(num_rows, ...)`` array, padding dropped."""
    return stacked.reshape(-1, *stacked.shape[2:])[:num_rows]


def _chunked(
    input: jax.Array,
    linear_weight: jax.Array,
    linear_bias: jax.Array | None,
    target: jax.Array,
    weight: ArrayLike | None,
    *,
    probabilities: bool,
    dtype: np.dtype,
    reduction: Reduction,
    ignore_index: int,
    label_smoothing: jax.Array | None,
    chunk_rows: int,
) -> jax.Array:
    """The chunked path on a batched `input`: the loss (`_linear_cross_entropy` checks the target's values).

    Index targets: each chunk's `index_losses` parts are summed over the chunk (``'mean'``/``'sum'``) and
    `reduce_index_losses` reduces the per-chunk sums, or mixed per position (``'none'``). Probability
    targets: each chunk's per-position losses, summed or kept. `label_smoothing` None compiles no smoothing.
    """
    compute = _checks.computation_dtype(dtype)
    weight = _checks.cast_optional_for_computation(dtype, weight)
    num_rows, num_classes = input.shape[0], linear_weight.shape[0]
    mix = 0.0 if label_smoothing is None else label_smoothing  # `reduce_index_losses`' ε (unused when None)

    def chunk_fn(rows: jax.Array, targets: jax.Array, valid: jax.Array) -> jax.Array | IndexLosses:
        logits = _logits(rows, linear_weight, linear_bias).astype(compute)
        valid = valid.reshape(valid.shape + (1,) * (logits.ndim - 2))  # per position: (rows, d1, ..., dk)
        if probabilities:
            losses = _classification.probability_losses(
                jax.nn.log_softmax(logits, 1), targets.astype(compute), weight, label_smoothing, 1
            )
            losses = jnp.where(valid, losses, 0)
            return losses if reduction == "none" else jnp.sum(losses)
        parts = index_losses(
            logits,
            targets,
            weight,
            normalize=True,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            axis=1,
        )
        parts = parts.map_values(lambda part: jnp.where(valid, part, 0))
        if reduction == "none":
            return reduce_index_losses(parts, "none", mix, num_classes)
        return parts.map_values(jnp.sum)

    stacked = _map_row_chunks(chunk_fn, (input, target), chunk_rows)
    if reduction == "none":
        return _unchunk(stacked, num_rows)
    if not probabilities:
        return reduce_index_losses(stacked, reduction, mix, num_classes)
    loss = jnp.sum(stacked)
    if reduction == "mean":
        # As cross_entropy: divide by the number of positions; NaN for empty logits (even with C = 0).
        positions = num_rows * math.prod(linear_weight.shape[1:-1])
        loss = loss / (positions if positions * num_classes else 0)
    return loss


@typed_jit(
    static_argnames=("reduction", "ignore_index", "options", "with_smoothing"),
    float_options=(_classification.LABEL_SMOOTHING,),
)
def _linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    linear_bias: ArrayLike | None,
    weight: ArrayLike | None,
    reduction: Reduction,
    ignore_index: int | None,
    label_smoothing: jax.Array | float,
    options: LinearCrossEntropyOptions | None,
    *,
    with_smoothing: bool,
) -> tuple[jax.Array, _checks.Failures]:
    """linear_cross_entropy's checks and fused computation; returns ``(loss, failures)``.

    `with_smoothing` is `_classification.needs_smoothing(label_smoothing)` (see `cross_entropy_with_failures`).
    """
    input, linear_weight, target = jnp.asarray(input), jnp.asarray(linear_weight), jnp.asarray(target)
    linear_bias = None if linear_bias is None else jnp.asarray(linear_bias)
    _checks.check_reduction(_NAME, reduction)
    # ε > 1 traced: a value check (a known one raised before the call), failing the whole loss.
    smoothing = jnp.asarray(label_smoothing) if with_smoothing else None
    option_failures = {} if smoothing is None else _classification.LABEL_SMOOTHING.failures(smoothing)
    option_failed = _checks.any_failed(option_failures)
    if options is not None and not isinstance(options, LinearCrossEntropyOptions):
        raise TypeError(
            f"{_NAME}: `options` must be a jaxloss LinearCrossEntropyOptions or None; got {type(options).__name__}."
        )
    logits_shape = _check_linear(input, linear_weight, linear_bias)
    num_classes = linear_weight.shape[0]
    probabilities = _holds_probabilities(target, logits_shape)
    check_class_weight(_NAME, weight, num_classes)
    failures = option_failures  # class probabilities are not checked (nor are they by torch)
    failed = option_failed
    if probabilities:
        if ignore_index is not None:
            raise ValueError(
                f"{_NAME}: `ignore_index` must be None (unspecified) with class-probability targets, as in "
                f"torch; got {ignore_index!r}."
            )
        ignore_index = -100  # cross_entropy's default; it plays no part with probabilities
        # torch promotes here, integer weights included.
        dtype = _checks.floating_dtype(_NAME, integers_to_float32=True, input=input, target=target, weight=weight)
    else:
        if ignore_index is None:  # torch's default for class indices
            ignore_index = -100
        ignore_index = _checks.int_option(_NAME, "ignore_index", ignore_index)
        if weight is not None:  # torch's class-index kernels do not promote
            _checks.check_same_dtype(_NAME, "input", input, "weight", weight)
            weight = jnp.asarray(weight)
        dtype = input.dtype
        # The value check, on the whole target before the logits, for `_checks.nan_derivatives_if`: on both
        # paths every element of every operand's derivative is then NaN when it fails (a chunk sees only its
        # own rows, and with C = 0 no NaN would reach `input` through the logits).
        failures = {**option_failures, **_classification.index_failures(target, num_classes, ignore_index)}
        failed = _checks.any_failed(failures)
    if failures:  # the value checks, for `_checks.nan_derivatives_if` (probabilities without ε: none)
        input = _checks.nan_derivatives_if(failed, input)
        linear_weight = _checks.nan_derivatives_if(failed, linear_weight)
        linear_bias = _checks.nan_derivatives_if(failed, linear_bias)
        weight = None if weight is None else _checks.nan_derivatives_if(failed, jnp.asarray(weight))
        if probabilities:
            target = _checks.nan_derivatives_if(failed, target)
        smoothing = _checks.nan_derivatives_if(failed, smoothing)

    if options is None:
        # The logits come in the computation dtype (float32 for 16-bit inputs): so must the weight of index
        # targets, which cross_entropy wants in the logits' dtype.
        weight = _checks.cast_optional_for_computation(input.dtype, weight)
        # cross_entropy repeats the checks above on the same target and ε (and the same NaN derivatives, now
        # of the logits): its failures are ours.
        loss, _ = _classification.cross_entropy_with_failures(
            _logits(input, linear_weight, linear_bias),
            target,
            weight,
            ignore_index,
            reduction,
            label_smoothing if smoothing is None else smoothing,
            None,
            with_smoothing=with_smoothing,
        )
    else:
        batched = input.ndim == 2
        if not batched:  # one row
            input, target = input[None], target[None]
        chunk_rows = options.chunk_size(input.shape[0], input.shape[1], math.prod(linear_weight.shape[:-1]))
        loss = _chunked(
            input,
            linear_weight,
            linear_bias,
            target,
            weight,
            probabilities=probabilities,
            dtype=dtype,
            reduction=reduction,
            ignore_index=ignore_index,
            label_smoothing=smoothing,
            chunk_rows=chunk_rows,
        )
        if not batched and reduction == "none":
            loss = loss[0]
        if smoothing is not None:
            loss = _checks.nan_where(option_failed, loss)
    return loss.astype(dtype), failures


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = None,
    label_smoothing: float | jax.Array = 0.0,
    options: LinearCrossEntropyOptions | None = None,
) -> jax.Array:
    r"""Cross-entropy of a linear layer's logits, fused, as `torch.nn.functional.linear_cross_entropy`.

    Equal to ``cross_entropy(input @ linear_weight.T + linear_bias, target, weight=weight, ...)`` (see
    `jaxloss.functional.cross_entropy` for the loss, its reductions, label smoothing and gradients): with
    logits ``z = x Wᵀ + b`` of shape ``(N, C)`` (or ``(N, C, d1, ..., dk)`` for a K-dimensional
    ``(C, d1, ..., dk, in)`` weight, ``z[n, c, ...] = Σ_i x[n, i] W[c, ..., i] + b[c, ...]``),

    .. math:: \ell = (1 - ε)\,(-w_t\,\log\mathrm{softmax}(z)_t) + \frac{ε}{C} \sum_c (-w_c\,\log\mathrm{softmax}(z)_c)

    per position for class indices ``t``, and ``-Σ_c w_c (p_c (1 - ε) + ε / C) log softmax(z)_c`` for class
    probabilities ``p`` (a floating `target` of the logits' shape).

    Two paths, equal up to floating-point rounding:

    * ``options=None``: the logits are computed whole and passed to cross_entropy.
    * with `options`: the batch is split into chunks of ``options.chunk_size(N, in, C)`` rows (by default a
      chunk's logits take half to all of the memory of `input`; see `LinearCrossEntropyOptions`); each chunk's
      logits are computed and reduced on the spot, under `jax.checkpoint` inside `lax.map`, so the backward
      pass recomputes them chunk by chunk. Neither pass holds the ``(N, C)`` logits: memory drops from
      O(N·C) to O(chunk·C + C·in), for one extra logits matmul per chunk in the backward pass (and, since
      every chunk adds its ``(C, in)`` share into the weight's gradient, very small chunks slow the backward
      pass down). A last partial chunk is padded with rows that are masked out. Unlike torch, every case is
      chunked (label smoothing, K-dimensional weights, probability targets, any integer target dtype):
      nothing falls back and nothing warns; and the chunked path supports jit, vmap, higher-order and
      forward-mode derivatives.

    Like torch: `ignore_index` None means -100 with class indices, and any value but None with class
    probabilities raises; `input`, `linear_weight` and `linear_bias` (and a class-index `weight`) must share
    one dtype. Unlike torch (int64 and uint8 only), class indices of any integer dtype are accepted.
    Gradients flow into `input`, `linear_weight`, `linear_bias`, a probability `target`, and (JAX's ordinary
    gradient; torch refuses) `weight`. 16-bit inputs are computed in float32 (logits included) and the
    loss returned in the input dtype. optax has no fused counterpart.

    Class indices outside ``[0, C)`` other than `ignore_index` raise `ValueError` eagerly; under `jax.jit`
    or `jax.vmap`, where values are unknown, the loss is NaN at those positions (and so ``'mean'``/``'sum'``
    are NaN), and every element of the gradients is NaN. Likewise ε > 1: `ValueError` when its value is known,
    else a loss that is NaN everywhere, with NaN gradients. As in cross_entropy, ε is data (one compilation
    for every positive Python value, one for ε <= 0), and may be traced, batched or differentiated.

    Args:
      input: ``(N, in_features)`` or unbatched ``(in_features,)``, floating.
      linear_weight: ``(C, in_features)``, or ``(C, d1, ..., dk, in_features)`` for a K-dimensional loss
        (batched `input` only); `input`'s dtype.
      target: class indices of shape ``(N,)``, ``(N, d1, ..., dk)`` or ``()`` (unbatched), any integer
        dtype; or class probabilities of the logits' shape ``(N, C, d1, ..., dk)`` or ``(C,)``, floating.
      linear_bias: optional ``(C, d1, ..., dk)`` bias, `input`'s dtype.
      weight: optional ``(C,)`` class weights; with class indices of `input`'s dtype, with probabilities it
        takes part in the dtype promotion.
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
      ignore_index: None (-100 for class indices) or the target value whose positions are skipped.
      label_smoothing: ε, at most 1 (<= 0 or NaN means none, as in torch 2.13's functional form): a Python
        number or a real JAX scalar (may be traced, batched with `jax.vmap`, or differentiated).
      options: None for the unchunked path, or a `LinearCrossEntropyOptions` for the chunked one.

    Returns:
      The per-position losses (``(N,)``, ``(N, d1, ..., dk)`` or ``()``) for ``'none'``, else a scalar; in
      `input`'s dtype (promoted with a probability target's and `weight`'s dtype).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import linear_cross_entropy
      >>> from jaxloss.nn import LinearCrossEntropyOptions
      >>> x, w = jnp.array([[1.0, 2.0], [0.5, -1.0]]), jnp.array([[0.1, 0.2], [0.3, -0.1], [0.0, 0.5]])
      >>> linear_cross_entropy(x, w, jnp.array([2, 0]))
      Array(0.9308..., dtype=float32)
      >>> linear_cross_entropy(x, w, jnp.array([2, 0]), options=LinearCrossEntropyOptions(batch_chunk_size=1))
      Array(0.9308..., dtype=float32)
    """
    return _checks.raise_failed(
        _NAME,
        *_linear_cross_entropy(
            input,
            linear_weight,
            target,
            linear_bias,
            weight,
            reduction,
            ignore_index,
            label_smoothing,
            options,
            with_smoothing=_classification.needs_smoothing(label_smoothing),
        ),
    )
