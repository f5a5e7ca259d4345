"""The parity grid of cross_entropy and nll_loss.

The grid crosses class-index and class-probability targets, 1-D (unbatched), 2-D, 3-D and 4-D inputs, class
weights, `ignore_index` and `label_smoothing` with every reduction. The edges of torch's rules (negative and full
smoothing, ignore indices outside the classes, unnormalised probabilities, boolean weights) run in float64 under
jit; the extreme inputs (logits of ±1e9 and ±inf, every target ignored, zero total weight, empty batches and no
classes at all) in float32, where they bite hardest, eagerly and under jit. The input, and probability targets,
are differentiated.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)
INF = np.inf


def logits(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    """Logits of `shape`, normal with standard deviation 2, drawn from `rng` (the grid's generator unless given
    another)."""
    return 2 * rng.standard_normal(shape)


def indices(
    shape: int | tuple[int, ...],
    num_classes: int,
    ignored: int = 0,
    ignore_index: int = -100,
    *,
    rng: np.random.Generator = rng,
) -> np.ndarray:
    """Class indices in [0, num_classes), the first `ignored` (in C order) set to `ignore_index`."""
    target = rng.integers(0, num_classes, shape)
    target.reshape(-1)[:ignored] = ignore_index
    return target


def probabilities(*shape: int, axis: int = 1, rng: np.random.Generator = rng) -> np.ndarray:
    """Class probabilities of `shape`, positive and summing to 1 along `axis`."""
    e = np.exp(rng.standard_normal(shape))
    normalised: np.ndarray = e / e.sum(axis=axis, keepdims=True)
    return normalised


def class_weight(num_classes: int, *, rng: np.random.Generator = rng) -> np.ndarray:
    """Class weights in [0.2, 2)."""
    return rng.uniform(0.2, 2.0, num_classes)


def index_case(input: np.ndarray, target: np.ndarray, **options: float) -> dict[str, Any]:
    """A variant with class-index targets, differentiating `input`."""
    return dict(arrays=dict(input=input, target=target), options=options, grad=("input",))


def weighted_index_case(input: np.ndarray, target: np.ndarray, **options: float) -> dict[str, Any]:
    """`index_case` with a class weight."""
    case = index_case(input, target, **options)
    case["arrays"]["weight"] = class_weight(input.shape[0 if input.ndim == 1 else 1])
    return case


def probability_case(input: np.ndarray, target: np.ndarray, weighted: bool = False, **options: float) -> dict[str, Any]:
    """A variant with class-probability targets, with a class weight if `weighted`, differentiating `input` and
    `target`."""
    arrays = dict(input=input, target=target)
    if weighted:
        arrays["weight"] = class_weight(input.shape[0 if input.ndim == 1 else 1])
    return dict(arrays=arrays, options=options, grad=("input", "target"))


def with_reductions(loss: str, table: Mapping[str, tuple[tuple[str, ...], Mapping[str, Any]]]) -> list[Case]:
    """Cases of `table`, which maps a variant name to ``(reductions, Case fields)``."""
    return [case for name, (reductions, fields) in table.items() for case in grid(loss, {name: fields}, reductions)]


# The grid: every variant x reduction x dtype x mode.
GRID = [
    *grid(
        "cross_entropy",
        {
            "2d": index_case(logits(6, 4), indices(6, 4)),
            "2d_weight_ignore_smoothing": weighted_index_case(
                logits(6, 4), np.array([1, 0, 1, 3, 2, 1]), ignore_index=1, label_smoothing=0.3
            ),
            "4d_weight_ignore_smoothing": weighted_index_case(
                logits(2, 3, 4, 5), indices((2, 4, 5), 3, ignored=7), label_smoothing=0.2
            ),
            "unbatched_weight_smoothing": weighted_index_case(logits(5), np.array(1), label_smoothing=0.4),
            "probs": probability_case(logits(6, 4), probabilities(6, 4)),
            "probs_4d_weight_smoothing": probability_case(
                logits(2, 3, 4, 5), probabilities(2, 3, 4, 5), True, label_smoothing=0.3
            ),
        },
    ),
    *grid(
        "nll_loss",
        {
            "4d_weight_ignore": weighted_index_case(logits(2, 3, 4, 5), indices((2, 4, 5), 3, ignored=7)),
        },
    ),
]

# Options and shapes at the edges of torch's rules, with the reductions where they matter.
EDGES = [
    *with_reductions(
        "cross_entropy",
        {
            "2d_weight_ignore": (("none", "mean"), weighted_index_case(logits(6, 4), indices(6, 4, ignored=2))),
            "2d_smoothing": (("none", "mean"), index_case(logits(6, 4), indices(6, 4), label_smoothing=0.25)),
            "4d": (("mean",), index_case(logits(2, 3, 4, 5), indices((2, 4, 5), 3))),
            # torch 2.13 ignores label_smoothing <= 0, for both kinds of target.
            "negative_smoothing": (("mean",), index_case(logits(6, 4), indices(6, 4), label_smoothing=-0.1)),
            "probs_negative_smoothing": (
                ("mean",),
                probability_case(logits(6, 4), probabilities(6, 4), label_smoothing=-0.5),
            ),
            "smoothing_1": (
                ("none", "mean"),
                weighted_index_case(logits(6, 4), indices(6, 4, ignored=1), label_smoothing=1.0),
            ),
            "3d_weight_ignore_smoothing": (
                ("none", "mean"),
                weighted_index_case(logits(3, 4, 5), indices((3, 5), 4, ignored=4), label_smoothing=0.1),
            ),
            # ignore_index outside the classes; a negative ignore_index is allowed with probabilities.
            "ignore_index_7": (("none", "mean"), index_case(logits(5, 3), np.array([7, 0, 7, 2, 1]), ignore_index=7)),
            "probs_ignore_index_-5": (("mean",), probability_case(logits(6, 4), probabilities(6, 4), ignore_index=-5)),
            # Probabilities are not checked: any values, here of mixed signs.
            "probs_unnormalised": (("sum",), probability_case(logits(6, 4), 3 * rng.standard_normal((6, 4)))),
            "probs_unbatched_weight": (("none", "mean"), probability_case(logits(4), probabilities(4, axis=0), True)),
            # torch promotes a boolean weight with probability targets (with class indices it refuses one).
            "probs_bool_weight": (
                ("mean",),
                dict(
                    arrays=dict(input=logits(5, 3), target=probabilities(5, 3), weight=np.array([True, False, True])),
                    grad=("input", "target"),
                ),
            ),
        },
    ),
    *with_reductions(
        "nll_loss",
        {
            "ignore_index_-1": (
                ("mean",),
                weighted_index_case(logits(5, 3), np.array([-1, 0, 2, -1, 1]), ignore_index=-1),
            ),
            "2d": (("none", "mean"), index_case(logits(6, 4), indices(6, 4))),
            "unbatched_weight": (("none", "mean"), weighted_index_case(logits(5), np.array(2))),
            "3d_weight": (("mean",), weighted_index_case(logits(3, 4, 5), indices((3, 5), 4))),
            # Any input, not only log-probabilities (positive values give negative losses).
            "positive_input": (("mean",), index_case(np.abs(logits(6, 4)), indices(6, 4))),
        },
    ),
]

ROW_1E9 = np.array([[1e9, -1e9, 0.0, 1e9], [-1e9, -1e9, -1e9, 5.0], [1e9, 1e9, 1e9, 1e9], [0.0, 1e-9, -1e9, 3.0]])
ROW_INF = np.array([[-INF, 1.0, 0.5, -INF], [2.0, -INF, -INF, -INF], [-INF, 0.0, 1.0, 2.0]])
ZERO_WEIGHT = np.array([0.0, 0.0, 1.5, 2.0])
ALL = ("none", "mean", "sum")

# Extreme inputs, compared with torch like every other case.
EXTREMES = [
    *with_reductions(
        "cross_entropy",
        {
            "logits_1e9": (("none",), index_case(ROW_1E9, np.array([0, 1, 2, 3]))),
            "logits_1e9_weight_smoothing": (
                ("none",),
                weighted_index_case(ROW_1E9, np.array([1, 3, 2, 0]), label_smoothing=0.1),
            ),
            "probs_logits_1e9": (("none",), probability_case(ROW_1E9, probabilities(4, 4), True)),
            # -inf logits away from the target: finite loss; at the target (last row): infinite loss.
            "neg_inf_logits": (("mean",), index_case(ROW_INF, np.array([1, 0, 0]))),
            # With smoothing every -inf logit makes the loss infinite; the gradient stays finite.
            "neg_inf_logits_smoothing": (
                ("none",),
                weighted_index_case(ROW_INF, np.array([1, 0, 3]), label_smoothing=0.2),
            ),
            # A zero class weight against an -inf logit: 0 * -inf = NaN in the smoothing term, finite gradient.
            "neg_inf_logits_zero_weight_smoothing": (
                ("none",),
                dict(
                    arrays=dict(input=ROW_INF, target=np.array([1, 0, 3]), weight=ZERO_WEIGHT[::-1].copy()),
                    options=dict(label_smoothing=0.2),
                    grad=("input",),
                ),
            ),
            # p = 0 against an -inf logit: 0 * -inf = NaN, as in torch; gradients as torch's.
            "probs_neg_inf_logits": (
                ("none",),
                probability_case(ROW_INF, np.array([[0, 0.5, 0.5, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])),
            ),
            "pos_inf_logit": (("mean",), index_case(np.array([[INF, 0.0, 1.0], [0.0, 1.0, 2.0]]), np.array([0, 1]))),
            "all_ignored": (("mean",), index_case(logits(4, 3), np.full(4, -100))),
            "all_ignored_weight_smoothing": (
                ALL,
                weighted_index_case(logits(4, 3), np.full(4, 2), ignore_index=2, label_smoothing=0.3),
            ),
            "all_ignored_4d": (("mean",), weighted_index_case(logits(2, 3, 2, 2), np.full((2, 2, 2), -100))),
            # Every kept target has weight 0: NaN value and, as torch's backward divides by it, NaN gradient.
            "zero_total_weight": (
                ("mean",),
                dict(
                    arrays=dict(input=logits(4, 4), target=np.array([0, 1, -100, 1]), weight=ZERO_WEIGHT),
                    grad=("input",),
                ),
            ),
            "zero_total_weight_smoothing": (
                ("mean",),
                dict(
                    arrays=dict(input=logits(4, 4), target=np.array([0, -100, 1, 1]), weight=ZERO_WEIGHT),
                    options=dict(label_smoothing=0.1),
                    grad=("input",),
                ),
            ),
            "empty": (("mean", "sum"), index_case(logits(0, 4), np.zeros(0, int))),
            "empty_weight_smoothing": (
                ("mean",),
                weighted_index_case(logits(0, 4), np.zeros(0, int), label_smoothing=0.1),
            ),
            "empty_4d": (("mean",), index_case(logits(2, 3, 0, 4), np.zeros((2, 0, 4), int))),
            "probs_empty": (("mean",), probability_case(logits(0, 4), np.zeros((0, 4)), True)),
            # No classes at all: every target must be ignored; probabilities are empty.
            "no_classes_ignored": (("mean",), index_case(logits(3, 0), np.full(3, -100))),
            "no_classes_ignored_smoothing": (
                ("none",),
                index_case(logits(3, 0), np.full(3, -100), label_smoothing=0.1),
            ),
            "probs_no_classes": (("mean",), probability_case(logits(3, 0), np.zeros((3, 0)))),
        },
    ),
    *with_reductions(
        "nll_loss",
        {
            "log_probs_neg_inf": (
                ("none",),
                weighted_index_case(np.array([[-INF, -1.0, -2.0], [-0.5, -INF, -3.0]]), np.array([0, 2])),
            ),
            # -inf times a zero class weight: NaN, as in torch.
            "log_probs_neg_inf_zero_weight": (
                ("mean",),
                dict(
                    arrays=dict(
                        input=np.array([[-INF, -1.0, -2.0], [-0.5, -1.0, -3.0]]),
                        target=np.array([0, 2]),
                        weight=np.array([0.0, 1.0, 2.0]),
                    ),
                    grad=("input",),
                ),
            ),
            "all_ignored": (("mean",), weighted_index_case(logits(4, 3), np.full(4, -100))),
            "zero_total_weight": (
                ("mean",),
                dict(
                    arrays=dict(input=logits(4, 4), target=np.array([0, 1, -100, 1]), weight=ZERO_WEIGHT),
                    grad=("input",),
                ),
            ),
            "empty": (("mean",), weighted_index_case(logits(0, 4), np.zeros(0, int))),
            "empty_4d": (("none",), index_case(logits(2, 3, 4, 0), np.zeros((2, 4, 0), int))),
        },
    ),
]

CASES: list[Case] = [
    *GRID,
    # The edges once each: in float64, under jit.
    *(dataclasses.replace(case, dtypes=("float64",), modes=("jit",)) for case in EDGES),
    # In float32, where 1e9 and the infinities bite hardest; eagerly and under jit, which XLA may simplify
    # differently (e.g. ``inf * 0`` from a masking product).
    *(dataclasses.replace(case, dtypes=("float32",)) for case in EXTREMES),
]
"""Every case of cross_entropy and nll_loss: the grid in float32 and float64, the edges in float64 under jit, the
extremes in float32, three cases in float16 and bfloat16 under jit; eagerly and under jit unless said."""

# In 16 bits too (`Case.in_16_bit`): one case of each kind of target with the most options at once, reduction 'mean':
# index targets with a weight, ignore_index and smoothing; 4-D probability targets with a weight and smoothing;
# nll_loss's 4-D input with a weight and ignore_index.
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id.endswith("-mean")
    and case.id.split("-")[1] in ("2d_weight_ignore_smoothing", "probs_4d_weight_smoothing", "4d_weight_ignore")
]
