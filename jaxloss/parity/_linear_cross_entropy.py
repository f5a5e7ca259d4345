"""linear_cross_entropy's parity grid: the unchunked path and the chunked one, against torch's.

Class indices (with ``ignore_index``, every row ignored included) and class probabilities, batched, unbatched
and with extra dimensions (``out_features``); a bias, class weights and label smoothing; an empty batch and
logits of 1e8 scale. The chunked path (jaxloss's own code) runs in chunks of 3 rows (a partial last chunk), of
1, of more than the batch and of the size torch's options choose; its variants get the reductions where their
code differs, the unchunked path (cross_entropy after the matmul) fewer.
"""

from typing import Any

import numpy as np

from jaxloss.nn import LinearCrossEntropyOptions
from jaxloss.parity import _classification
from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)
N, IN, C = 7, 4, 5  # batch, in_features, classes: chunks of 3 rows leave a partial last chunk


# The helpers that draw data take the generator as `rng` (this module's by default), so that tests draw their own
# data with them.


def indices(
    shape: int | tuple[int, ...],
    num_classes: int = C,
    ignored: int = 0,
    ignore_index: int = -100,
    *,
    rng: np.random.Generator = rng,
) -> np.ndarray:
    """`_classification.indices`, with this grid's `C` classes and random generator by default."""
    return _classification.indices(shape, num_classes, ignored, ignore_index, rng=rng)


def probabilities(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    e = np.exp(rng.standard_normal(shape))
    probs: np.ndarray = e / e.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    return probs


def case(
    input: np.ndarray,
    linear_weight: np.ndarray,
    target: np.ndarray,
    *,
    bias: bool = False,
    weighted: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Case fields: the linear operands (a random bias and class weight when asked) and loss options."""
    arrays = dict(input=input, linear_weight=linear_weight, target=target)
    grad = ["input", "linear_weight"]
    if bias:
        arrays["linear_bias"] = rng.standard_normal(linear_weight.shape[:-1])
        grad.append("linear_bias")
    if weighted:
        arrays["weight"] = rng.uniform(0.2, 2.0, linear_weight.shape[:1])
    if np.issubdtype(target.dtype, np.floating):
        grad.append("target")
    return dict(arrays=arrays, options=options, grad=tuple(grad))


def x(*batch: int, rng: np.random.Generator = rng) -> np.ndarray:
    return rng.standard_normal((*batch, IN))


def w(*out_features: int, rng: np.random.Generator = rng) -> np.ndarray:
    return rng.standard_normal((C, *out_features, IN))


FULL = case(x(N), w(), np.array([1, 0, 1, 3, 2, 4, 1]), bias=True, weighted=True, ignore_index=1, label_smoothing=0.3)
PROBS = case(x(N), w(), probabilities(N, C), bias=True, weighted=True, label_smoothing=0.25)
ALL = ("none", "mean", "sum")

# The unchunked path, and chunks of 3 rows (7 = 3 + 3 + 1 padded with 2 masked rows).
PATHS = {"unchunked": None, "chunk3": LinearCrossEntropyOptions(batch_chunk_size=3)}
# More ways to cut the batch of the case with every option.
CHUNKINGS = {
    "chunk1": LinearCrossEntropyOptions(batch_chunk_size=1),
    "chunk100_above_N": LinearCrossEntropyOptions(batch_chunk_size=100),  # one chunk of N rows, which divides N
    "auto": LinearCrossEntropyOptions(),  # 2 rows, as torch chooses (test_chunk_size_is_torchs): 7 = 2 + 2 + 2 + 1
}

# (variant, {path: reductions}, Case fields). Each case compiles a few programs, so the grid is pruned: the
# chunked path (jaxloss's own code) gets the reductions where a variant's code differs; the unchunked path,
# which is cross_entropy (tested on its own) after the matmul, gets fewer.
TABLE: list[tuple[str, dict[str, tuple[str, ...]], dict[str, Any]]] = [
    ("2d", {"unchunked": ("mean",), "chunk3": ("mean",)}, case(x(N), w(), indices(N))),
    ("bias_weight_ignore_smoothing", {"unchunked": ("none", "mean"), "chunk3": ALL}, FULL),
    ("bias_weight_ignore_smoothing", {"chunk1": ("none",), "chunk100_above_N": ("mean",), "auto": ("sum",)}, FULL),
    (
        "kdim_bias_weight_ignore_smoothing",
        {"unchunked": ("mean",), "chunk3": ("none", "mean")},
        case(
            x(N),
            w(3),
            indices((N, 3), ignored=4, ignore_index=2),
            bias=True,
            weighted=True,
            ignore_index=2,
            label_smoothing=0.1,
        ),
    ),
    (
        "unbatched_bias_weight_smoothing",
        {"unchunked": ("mean",), "chunk3": ("none",)},
        case(x(), w(), np.array(3), bias=True, weighted=True, label_smoothing=0.2),
    ),
    ("probs_bias_weight_smoothing", {"unchunked": ("mean",), "chunk3": ("none", "mean")}, PROBS),
    ("probs_kdim", {"unchunked": ("mean",), "chunk3": ("mean",)}, case(x(N), w(3), probabilities(N, C, 3), bias=True)),
    (
        "probs_unbatched_weight",
        {"unchunked": ("mean",), "chunk3": ("mean",)},
        case(x(), w(), probabilities(C), weighted=True),
    ),
    (
        "all_ignored_smoothing",
        {"chunk3": ("mean",)},
        case(x(N), w(), indices(N, ignored=N), weighted=True, label_smoothing=0.1),
    ),
    ("empty_batch", {"unchunked": ("mean",), "chunk3": ("sum",)}, case(x(0), w(), indices(0), bias=True)),
    ("huge_logits", {"chunk3": ("mean",)}, case(1e8 * x(N), w(), indices(N, ignored=2), bias=True)),
]


def with_options(fields: dict[str, Any], options: LinearCrossEntropyOptions | None) -> dict[str, Any]:
    return {**fields, "jax_options": dict(options=options)}


CASES: list[Case] = [
    case
    for variant, reductions_by_path, fields in TABLE
    for path, reductions in reductions_by_path.items()
    for case in grid(
        "linear_cross_entropy", {f"{variant}-{path}": with_options(fields, {**PATHS, **CHUNKINGS}[path])}, reductions
    )
]

# In 16 bits too (`Case.in_16_bit`): two cases with a bias, class weights and smoothing, one per path: class indices
# with ignore_index on the chunked path, class probabilities on the unchunked one.
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id
    in {
        "linear_cross_entropy-bias_weight_ignore_smoothing-chunk3-mean",
        "linear_cross_entropy-probs_bias_weight_smoothing-unchunked-mean",
    }
]
