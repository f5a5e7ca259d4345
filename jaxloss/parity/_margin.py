"""The margin losses' parity grid: multilabel_margin_loss, multi_margin_loss, margin_ranking_loss and
hinge_embedding_loss.

Every shape torch accepts (0-d, 1-d and batched inputs, 0-d and 1-d targets, broadcasting operands, empty
batches); every reduction where the reduction is what is under test; scores exactly on each hinge's kink for
several margins (and, for multi_margin_loss, p = 1 and 2 with class weights), where torch's subgradient is the
answer; scores of +-1e9, +-inf and NaN; targets of any value for margin_ranking_loss and hinge_embedding_loss,
integer targets, and integer inputs (float32 only).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)
INF, NAN = np.inf, np.nan


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def labels(high: int, *shape: int) -> np.ndarray:
    return rng.integers(0, high, shape)


# Each variant lists only the reductions it needs: all three where the reduction is what is under test, 'none'
# where the per-element values and gradients are (kinks, extremes, shapes).

ALL, NONE, NONE_MEAN = ("none", "mean", "sum"), ("none",), ("none", "mean")


def variant_cases(
    loss: str,
    grad: tuple[str, ...],
    options: Mapping[str, Any] | None = None,
    /,
    **variants: tuple[tuple[str, ...], dict[str, np.ndarray]],
) -> list[Case]:
    """`grid` cases of `loss` for `variants` (name -> (reductions, arrays)), all differentiating `grad`."""
    return [
        case
        for name, (reductions, arrays) in variants.items()
        for case in grid(loss, {name: dict(arrays=arrays, grad=grad, options=dict(options or {}))}, reductions)
    ]


# Rows of four classes with scores at +-1e9, +-inf and NaN: a NaN or infinite z only drops or saturates its own
# terms, as in torch's kernels.
EXTREME_SCORES = np.array(
    [[1e9, -1e9, 0.5, 3.0], [-1e9, 1e9, 1e9, 0.0], [INF, 0.5, -INF, NAN], [0.0, INF, 1.0, 2.0], [NAN, 0.0, 1.0, 2.0]]
)

# multilabel_margin_loss --------------------------------------------------------------------------------------
# Rows: two targets then -1 (later entries ignored), a duplicate, no target at all, every class a target (no
# non-target: 0), and a -1 in last place.
MLM_TARGET = np.array([[0, 2, -1, 1, 3], [3, 3, -1, 0, 0], [-1, 0, 1, 2, 3], [4, 3, 2, 1, 0], [1, 4, 0, 2, -1]])
# Scores whose differences x[y_j] - x[i] sit exactly on the kink 1, at 0, and on both sides of the kink.
MLM_TIES = (
    np.array([[1.0, 0.0, 0.5, -1.0], [2.0, 1.0, 1.0, 1.5], [0.5, -0.5, 0.5, 1.5]]),
    np.array([[0, -1, 0, 0], [0, 3, -1, 1], [2, 0, -1, 0]]),
)
MLM_EXTREME_TARGET = np.array([[0, 2, -1, 0], [0, 3, -1, 1], [0, -1, 0, 0], [0, 2, -1, 0], [0, -1, 0, 0]])

MLM_CASES = variant_cases(
    "multilabel_margin_loss",
    ("input",),
    **{
        "2d": (ALL, dict(input=normal(5, 5), target=MLM_TARGET)),
        "1d": (NONE_MEAN, dict(input=normal(5), target=MLM_TARGET[0])),  # a scalar for every reduction
        "0d": (NONE, dict(input=normal(), target=np.array(0))),
        "0d_target_1d": (NONE, dict(input=normal(), target=np.array([-1]))),
        "1class_target_0d": (NONE, dict(input=normal(1), target=np.array(0))),
        "ties_1e9_inf_nan": (
            NONE,
            dict(
                input=np.concatenate([MLM_TIES[0], EXTREME_SCORES]),
                target=np.concatenate([MLM_TIES[1], MLM_EXTREME_TARGET]),
            ),
        ),
        # torch 2.13 leaves 'mean' and 'sum' of an empty batch uninitialised (jaxloss gives NaN and 0, the rule of
        # every other loss): 'none' only.
        "empty": (NONE, dict(input=normal(0, 4), target=labels(4, 0, 4))),
    },
)

# multi_margin_loss -------------------------------------------------------------------------------------------
MM_2D = dict(input=normal(6, 5), target=labels(5, 6))
MM_WEIGHT = rng.uniform(0.5, 2.0, 5)


def mm_ties(margin: float) -> dict[str, np.ndarray]:
    """Rows whose scores put margin - x[y] + x[i] exactly at 0 and on both sides of it, then random rows, with
    class weights."""
    row = [1.0, 1.0 - margin, 1.25 - margin, 0.75 - margin, 1.0]
    return dict(
        input=np.concatenate([[row, row[::-1], row[1:] + row[:1]], MM_2D["input"]]),
        target=np.concatenate([[0, 4, 4], MM_2D["target"]]),
        weight=MM_WEIGHT,
    )


MM_CASES = [
    *variant_cases(
        "multi_margin_loss",
        ("input",),
        **{
            "2d": (ALL, MM_2D),
            "1d_target_0d": (NONE, dict(input=normal(5), target=np.array(3))),
            "1d_target_1d": (NONE, dict(input=normal(5), target=np.array([1]))),
            "batch1_target_0d": (NONE, dict(input=normal(1, 5), target=np.array(2))),
            "0d": (NONE, dict(input=normal(), target=np.array(0))),
            "0d_target_1d": (NONE, dict(input=normal(), target=np.array([0]))),
            "1e9_inf_nan": (NONE, dict(input=EXTREME_SCORES, target=np.array([0, 3, 0, 2, 1]))),
            "empty": (NONE, dict(input=normal(0, 4), target=labels(4, 0))),
        },
    ),
    *[
        case
        for p, margin, reductions in [(1, 1.0, NONE), (2, 1.0, ALL), (1, 0.0, NONE), (2, -0.5, NONE)]
        for case in variant_cases(
            "multi_margin_loss",
            ("input",),
            dict(p=p, margin=margin),
            **{f"p{p}_margin{margin}_weight_ties": (reductions, mm_ties(margin))},
        )
    ],
    *variant_cases(
        "multi_margin_loss",
        ("input",),
        dict(p=2),
        p2_weight_1e9_inf_nan=(
            NONE,
            dict(input=EXTREME_SCORES, target=np.array([0, 3, 0, 2, 1]), weight=np.array([0.5, 1.0, 2.0, 4.0])),
        ),
    ),
]

# margin_ranking_loss -----------------------------------------------------------------------------------------
# -t (x1 - x2) + margin is exactly 0: elements 0-1 for margin 0.5, 2-3 for margin 0, 4-5 for margin -1.
MR_KINKS = dict(
    input1=np.array([1.5, 0.0, 2.0, 1.0, 0.0, 1.0, 3.0]),
    input2=np.array([1.0, 0.5, 2.0, 1.0, 0.5, 0.0, 1.0]),
    target=np.array([1.0, -1.0, 0.5, 1.0, 2.0, -1.0, -0.5]),
)
MR_GRAD = ("input1", "input2", "target")

MR_CASES = [
    *variant_cases(
        "margin_ranking_loss",
        MR_GRAD,
        **{
            "1d": (ALL, dict(input1=normal(6), input2=normal(6), target=np.sign(normal(6)))),
            "2d_target_any_value": (NONE, dict(input1=normal(4, 3), input2=normal(4, 3), target=normal(4, 3))),
            "0d": (NONE, dict(input1=normal(), input2=normal(), target=np.array(-1.0))),
            "broadcast": (NONE_MEAN, dict(input1=normal(4, 1), input2=normal(1, 3), target=np.ones((1, 1)))),
            # inf - inf: a NaN loss, with input gradients 0 and a NaN target gradient, as torch's.
            "1e9_inf_nan": (
                NONE,
                dict(
                    input1=np.array([1e9, -1e9, INF, -INF, 0.0, INF, NAN]),
                    input2=np.array([-1e9, 1e9, 0.0, 1.0, INF, INF, 0.0]),
                    target=np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0]),
                ),
            ),
            "empty": (ALL, dict(input1=normal(0, 3), input2=normal(0, 3), target=normal(0, 3))),
        },
    ),
    *[
        case
        for margin in (0.5, 0.0, -1.0)
        for case in variant_cases(
            "margin_ranking_loss", MR_GRAD, dict(margin=margin), **{f"margin{margin}_kinks": (NONE, MR_KINKS)}
        )
    ],
    *variant_cases(
        "margin_ranking_loss",
        ("input1", "input2"),
        int_target=(NONE, dict(input1=normal(6), input2=normal(6), target=labels(2, 6) * 2 - 1)),
    ),
]

# hinge_embedding_loss ----------------------------------------------------------------------------------------
# Targets 1, -1 and other values (0, 2: both terms).
HE_TARGET = np.array([1.0, -1.0, 0.0, 2.0, -1.0, 1.0, -1.0, 0.0])
HE_GRAD = ("input", "target")


def he_kinks(margin: float) -> dict[str, np.ndarray]:
    """Inputs exactly on the kink x == margin for each kind of target, then on both sides of it."""
    return dict(
        input=np.array([margin, margin, margin, margin, margin - 0.5, margin + 0.5, margin + 0.5, -0.5]),
        target=HE_TARGET,
    )


HE_CASES = [
    *variant_cases(
        "hinge_embedding_loss",
        HE_GRAD,
        **{
            "1d": (ALL, dict(input=normal(8), target=HE_TARGET)),
            "2d": (NONE, dict(input=normal(4, 3), target=np.sign(normal(4, 3)))),
            "0d": (NONE, dict(input=normal(), target=np.array(-1.0))),
            "broadcast_target": (NONE, dict(input=normal(4, 3), target=np.array([1.0, -1.0, 0.0]))),
            "broadcast_up": (NONE_MEAN, dict(input=normal(4, 3), target=np.array([[[1.0], [-1.0], [1.0], [-1.0]]]))),
            "1e9_inf_nan": (
                NONE,
                dict(
                    input=np.array([1e9, -1e9, 1e9, -1e9, INF, -INF, INF, -INF, INF, -INF, NAN, NAN]),
                    target=np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 1.0, -1.0]),
                ),
            ),
            "empty": (ALL, dict(input=normal(0, 3), target=normal(0, 3))),
        },
    ),
    *[
        case
        for margin in (1.0, 0.0, -1.0)
        for case in variant_cases(
            "hinge_embedding_loss", HE_GRAD, dict(margin=margin), **{f"margin{margin}_kinks": (NONE, he_kinks(margin))}
        )
    ],
    *variant_cases(
        "hinge_embedding_loss", ("input",), int_target=(NONE, dict(input=normal(6), target=labels(3, 6) - 1))
    ),
]

# Integer inputs give a float32 loss, as torch's: in float32 only, since torch's result is float32 even where a
# float64 run expects float64. (Drawn last, after every other case's data.)
MR_INTEGER_CASES = [
    dataclasses.replace(case, dtypes=("float32",))
    for case in variant_cases(
        "margin_ranking_loss",
        (),
        dict(margin=1.0),
        integers=(NONE_MEAN, dict(input1=labels(5, 6), input2=labels(5, 6), target=labels(2, 6) * 2 - 1)),
    )
]

CASES: list[Case] = MLM_CASES + MM_CASES + MR_CASES + MR_INTEGER_CASES + HE_CASES

# In 16 bits too (`Case.in_16_bit`): one case of each loss, three of them on the hinge's kink (multi_margin_loss with
# p = 2 and class weights).
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id
    in {
        "multilabel_margin_loss-2d-mean",
        "multi_margin_loss-p2_margin1.0_weight_ties-mean",
        "margin_ranking_loss-margin0.5_kinks-none",
        "hinge_embedding_loss-margin1.0_kinks-none",
    }
]
