"""The parity grid of binary_cross_entropy, binary_cross_entropy_with_logits, soft_margin_loss and
multilabel_soft_margin_loss.

Each loss on scalar, 1-D to 3-D and empty inputs, with the reductions where they matter; with weights (and
binary_cross_entropy_with_logits' `pos_weight`) of every shape torch broadcasts, boolean ones included; with
integer targets where torch takes them; and at the extremes: probabilities of exactly 0 and 1 and below torch's
clamp, logits of ±1e9 and ±inf, margins up to where torch's formula overflows. Every floating argument torch
differentiates is differentiated.
"""

from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)
ALL = ("none", "mean", "sum")


def normal(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    """Standard normal values of `shape`, drawn from `rng` (the grid's generator unless given another)."""
    return rng.standard_normal(shape)


def probabilities(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    """Probabilities of `shape`, in [0.02, 0.98)."""
    return rng.uniform(0.02, 0.98, shape)


def labels(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    """Hard labels of `shape`, 0.0 or 1.0."""
    return rng.integers(0, 2, shape).astype(np.float64)


def args(
    input: np.ndarray, target: np.ndarray, *, grad: tuple[str, ...] = ("input", "target"), **arrays: np.ndarray
) -> dict[str, Any]:
    """A variant's fields: the arrays and the arguments to differentiate."""
    return dict(arrays=dict(input=input, target=target, **arrays), grad=grad)


def cases(loss: str, variants: dict[str, tuple[tuple[str, ...], dict[str, Any]]]) -> list[Case]:
    """`grid` over variants given as ``name: (reductions, fields)``."""
    return [case for name, (reductions, fields) in variants.items() for case in grid(loss, {name: fields}, reductions)]


# --- binary_cross_entropy -----------------------------------------------------------------------------------------

# Probabilities exactly 0 and 1 (clamped logs, floored gradient denominator, infinite target gradient), tiny
# probabilities where x (1 - x) falls below torch's ε = float32(1e-12), and 1e-300, where float64 shows that the
# target gradient is the unclamped -logit(x) = 690.8 while the value is clamped at 100 (float32 rounds it to 0).
BCE_EXTREME_INPUT = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1e-30, 1e-13, 1e-13, 1e-300, 1 - 1e-7, 0.5, 1e-8])
BCE_EXTREME_TARGET = np.array([1.0, 0.0, 0.5, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.0])


BCE_CASES = cases(
    "binary_cross_entropy",
    {
        "scalar": (("none",), args(probabilities(), probabilities())),
        "2d": (ALL, args(probabilities(4, 3), probabilities(4, 3))),
        "3d_hard_targets": (("sum",), args(probabilities(2, 3, 4), labels(2, 3, 4))),
        "empty": (("mean",), args(probabilities(0, 3), probabilities(0, 3))),
        "weight_row": (("mean",), args(probabilities(4, 3), probabilities(4, 3), weight=rng.uniform(0, 2, 3))),
        "weight_col": (("none",), args(probabilities(4, 3), probabilities(4, 3), weight=rng.uniform(0, 2, (4, 1)))),
        "weight_scalar": (("sum",), args(probabilities(4, 3), probabilities(4, 3), weight=np.array(1.5))),
        "bool_weight": (
            ("mean",),
            args(probabilities(4, 3), probabilities(4, 3), weight=rng.uniform(size=(4, 3)) < 0.5),
        ),
        "extremes": (("none", "mean"), args(BCE_EXTREME_INPUT, BCE_EXTREME_TARGET)),
        "extremes_weight": (("mean",), args(BCE_EXTREME_INPUT, BCE_EXTREME_TARGET, weight=rng.uniform(0, 2, 13))),
    },
)

# --- binary_cross_entropy_with_logits -----------------------------------------------------------------------------

# Large and infinite logits with targets 0, 1 and 1/2: torch's values (NaN at -inf, and at +inf with t = 1) and
# its hand-written gradients (finite for the input even where the value is NaN, ±inf for the target).
LOGIT_EXTREME_INPUT = np.array(
    [-np.inf, np.inf, -1e9, 1e9, -200.0, 200.0, 0.0, -np.inf, np.inf, 0.0, 1e9, -1e9, 30.0, -30.0, 40.0, -np.inf]
)
LOGIT_EXTREME_TARGET = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.3, 0.5])


BCEWL_CASES = cases(
    "binary_cross_entropy_with_logits",
    {
        "scalar": (("none",), args(normal(), probabilities())),
        "2d": (ALL, args(normal(4, 3), probabilities(4, 3))),
        "3d": (("sum",), args(normal(2, 3, 4), labels(2, 3, 4))),
        "empty": (("mean",), args(normal(0, 3), probabilities(0, 3))),
        "targets_outside_01": (("none",), args(normal(4, 3), rng.uniform(-1, 3, (4, 3)))),
        "weight_col": (("none",), args(normal(4, 3), probabilities(4, 3), weight=rng.uniform(0, 2, (4, 1)))),
        "bool_weight": (("sum",), args(normal(4, 3), probabilities(4, 3), weight=rng.uniform(size=3) < 0.5)),
        "pos_weight_row": (("mean",), args(normal(4, 3), labels(4, 3), pos_weight=rng.uniform(0.5, 3, 3))),
        "pos_weight_col": (("none",), args(normal(4, 3), probabilities(4, 3), pos_weight=rng.uniform(0.5, 3, (4, 1)))),
        "pos_weight_scalar": (("sum",), args(normal(4, 3), probabilities(4, 3), pos_weight=np.array(2.5))),
        "3d_weight_pos_weight": (
            ("mean",),
            args(
                normal(2, 3, 4),
                probabilities(2, 3, 4),
                weight=rng.uniform(0, 2, (3, 1)),
                pos_weight=rng.uniform(0.5, 3, 4),
            ),
        ),
        "extremes": (("none", "mean"), args(LOGIT_EXTREME_INPUT, LOGIT_EXTREME_TARGET)),
        "extremes_pos_weight": (
            ("none",),
            args(LOGIT_EXTREME_INPUT, LOGIT_EXTREME_TARGET, pos_weight=rng.uniform(0.5, 3, 16)),
        ),
    },
)

# --- soft_margin_loss ---------------------------------------------------------------------------------------------

# Large margins that torch still evaluates without overflow (|t x| <= 80 in float32), and infinite inputs on the
# side where exp(-t x) is 0. Beyond that torch overflows: see tests/test_binary.py, test_soft_margin_overflow_deviation.
SOFT_MARGIN_EXTREME_INPUT = np.array([80.0, -80.0, 0.0, np.inf, -np.inf, 1e9, -30.0, 30.0, 5.0])
SOFT_MARGIN_EXTREME_TARGET = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 0.0])


def margin(input: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    # torch refuses to differentiate soft_margin_loss's target: ours is covered by tests/test_binary.py,
    # test_soft_margin_target_gradient.
    return args(input, target, grad=("input",))


def signs(*shape: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], shape)


SOFT_MARGIN_CASES = cases(
    "soft_margin_loss",
    {
        "scalar": (("none",), margin(normal(), signs())),
        "2d": (ALL, margin(normal(4, 3), signs(4, 3))),
        "3d": (("sum",), margin(normal(2, 3, 4), normal(2, 3, 4))),
        "empty": (("mean",), margin(normal(0, 3), signs(0, 3))),
        "target_row": (("none",), margin(normal(4, 3), signs(3))),
        "target_scalar": (("mean",), margin(normal(4, 3), np.array(-1.0))),
        "int_target": (("none",), margin(normal(4, 3), rng.choice([-1, 1], (4, 3)))),
        "extremes": (("none",), margin(SOFT_MARGIN_EXTREME_INPUT, SOFT_MARGIN_EXTREME_TARGET)),
    },
)

# --- multilabel_soft_margin_loss ----------------------------------------------------------------------------------

# Large and infinite logits; x = +inf with t = 1 and x = -inf with t = 0 give torch's NaN (0 · inf).
MLSM_EXTREME_INPUT = np.array([[1e9, -1e9, np.inf, 30.0], [-np.inf, 0.0, -30.0, 200.0], [np.inf, -np.inf, 1e9, 0.0]])
MLSM_EXTREME_TARGET = np.array([[1.0, 0.0, 0.0, 0.5], [1.0, 0.5, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]])


def multilabel(input: np.ndarray, target: np.ndarray, **arrays: np.ndarray) -> dict[str, Any]:
    # torch differentiates input, target and weight alike (integer targets aside).
    floating = dict(input=input, target=target, **arrays)
    grad = tuple(name for name, value in floating.items() if np.issubdtype(value.dtype, np.floating))
    return args(input, target, grad=grad, **arrays)


MLSM_CASES = cases(
    "multilabel_soft_margin_loss",
    {
        "1d": (("none",), multilabel(normal(3), labels(3))),
        "2d": (ALL, multilabel(normal(4, 3), labels(4, 3))),
        "3d": (("none",), multilabel(normal(2, 4, 3), labels(2, 4, 3))),
        "int_target": (("sum",), multilabel(normal(4, 3), rng.integers(0, 2, (4, 3)))),
        "empty_batch": (("mean",), multilabel(normal(0, 3), labels(0, 3))),
        "empty_classes": (("none",), multilabel(normal(4, 0), labels(4, 0))),
        "weight_row": (("mean",), multilabel(normal(4, 3), labels(4, 3), weight=rng.uniform(0, 2, 3))),
        "bool_weight": (("mean",), multilabel(normal(4, 3), labels(4, 3), weight=rng.uniform(size=3) < 0.5)),
        "weight_enlarges": (("none",), multilabel(normal(4, 3), labels(4, 3), weight=rng.uniform(0, 2, (2, 1, 3)))),
        "soft_target_row": (("none",), multilabel(normal(4, 3), probabilities(3))),
        # torch's quirk: the target lifts the result to rank 3 and axis 1 (not the classes) is summed: shape (1, 3).
        "target_enlarges": (("none",), multilabel(normal(4, 3), labels(1, 4, 3))),
        "extremes": (("none",), multilabel(MLSM_EXTREME_INPUT, MLSM_EXTREME_TARGET)),
    },
)

CASES: list[Case] = BCE_CASES + BCEWL_CASES + SOFT_MARGIN_CASES + MLSM_CASES
"""Every case of the four losses, each run in float32 and float64, eagerly and under jit; one case of each also in
float16 and bfloat16, under jit."""

# In 16 bits too (`Case.in_16_bit`): one case of each loss, with its weight where it takes one
# (binary_cross_entropy_with_logits: `pos_weight`).
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id
    in {
        "binary_cross_entropy-weight_row-mean",
        "binary_cross_entropy_with_logits-pos_weight_row-mean",
        "soft_margin_loss-2d-sum",
        "multilabel_soft_margin_loss-weight_row-mean",
    }
]
