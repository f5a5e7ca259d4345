"""The parity grid of kl_div, poisson_nll_loss and gaussian_nll_loss.

Each loss on scalar, 1-D to 3-D and empty inputs in every reduction (kl_div's 'batchmean' and its warned-about
'mean' included), and, unreduced, at the options and values where torch's formulas branch: log-space targets,
targets broadcast to the input and beyond it, targets of 0 and below, infinite and huge log-probabilities;
poisson_nll_loss's rates and log-rates, its Stirling term on both sides of t = 1, `eps` at a zero rate; the
variance shapes gaussian_nll_loss accepts, its clamp at `eps`, a Python float variance; and torch's promotion of
integer and boolean operands. Every floating operand is differentiated unless a variant says otherwise.

kl_div's 'mean' warns, in torch and in jaxloss, that it is not the KL divergence: the cases with it warn too.
"""

from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)

SHAPES = {"scalar": (), "1d": (7,), "2d": (4, 3), "3d": (2, 3, 4), "empty": (0, 3)}
ALL = ("none", "mean", "sum")
KL_ALL = ("none", "sum", "batchmean", "mean")
# Variants that test elements (options, extremes, boundaries) run unreduced: the random cotangent of the
# parity check then reaches every element's gradient, and the reductions are covered by the shape variants.
NONE = ("none",)


def normal(*shape: int) -> np.ndarray:
    """Standard normal values of `shape`."""
    return rng.standard_normal(shape)


def uniform(low: float, high: float, *shape: int) -> np.ndarray:
    """Values of `shape` uniform in [low, high)."""
    return rng.uniform(low, high, shape)


def array(*values: float) -> np.ndarray:
    """A float64 array of `values`."""
    return np.array(values, dtype=np.float64)


def cases(
    loss: str, grad: tuple[str, ...], groups: list[tuple[dict[str, dict[str, Any]], tuple[str, ...]]]
) -> list[Case]:
    """The grid of `loss` over `groups`, a list of (variants, reductions), differentiating `grad` unless a
    variant says otherwise."""
    return [
        case
        for variants, reductions in groups
        for case in grid(loss, {name: {"grad": grad, **v} for name, v in variants.items()}, reductions)
    ]


# kl_div: log-probabilities against probabilities (or log-probabilities with log_target=True).
KL_CASES = cases(
    "kl_div",
    ("input", "target"),
    [
        (
            {
                name: dict(arrays=dict(input=np.log(uniform(0.05, 1, *shape)), target=uniform(0, 1, *shape)))
                for name, shape in SHAPES.items()
            },
            KL_ALL,
        ),
        (
            {
                "2d_log_target": dict(
                    arrays=dict(input=normal(4, 3), target=normal(4, 3)), options=dict(log_target=True)
                ),
            },
            KL_ALL,
        ),
        # The result is (2, 4, 3); 'batchmean' still divides by input.shape[0] = 4.
        ({"broadcast_up": dict(arrays=dict(input=normal(4, 3), target=uniform(0, 1, 2, 4, 3)))}, ("none", "batchmean")),
        (
            {
                "broadcast_target": dict(arrays=dict(input=normal(4, 3), target=uniform(0, 1, 3))),
                # t = 0 contributes exactly 0 (target gradient NaN); t < 0 gives NaN; huge log-probabilities.
                "zero_negative_targets": dict(
                    arrays=dict(input=array(-1.0, -1e9, 1e9, -0.5, -2.0), target=array(0.0, 0.0, 0.5, -0.5, 1.0))
                ),
                "input_-inf": dict(arrays=dict(input=array(-np.inf, -np.inf, -1.0), target=array(0.0, 0.5, 0.5))),
                "log_target_extremes": dict(
                    arrays=dict(input=array(-1.0, -1e9, 1e9, 0.0), target=array(-np.inf, 0.0, -30.0, -1e9)),
                    options=dict(log_target=True),
                ),
            },
            NONE,
        ),
    ],
)

# poisson_nll_loss: t = 0, 0.5, 1 are on the masked side of the Stirling term, t = 1.5, 2, 3 on the other.
STIRLING_TARGET = array(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0)
POISSON_CASES = cases(
    "poisson_nll_loss",
    ("input", "target"),
    [
        (
            {
                name: dict(arrays=dict(input=normal(*shape), target=uniform(0, 5, *shape)))
                for name, shape in SHAPES.items()
            },
            ALL,
        ),
        (
            {
                "2d_full": dict(arrays=dict(input=normal(4, 3), target=uniform(0, 5, 4, 3)), options=dict(full=True)),
                **{
                    f"2d_rate_full{full}": dict(
                        arrays=dict(input=uniform(0.1, 3, 4, 3), target=uniform(0, 5, 4, 3)),
                        options=dict(log_input=False, full=full),
                    )
                    for full in (True, False)
                },
                "3d_rate_full_eps0.5": dict(
                    arrays=dict(input=uniform(0.1, 3, 2, 3, 4), target=uniform(0, 5, 2, 3, 4)),
                    options=dict(log_input=False, full=True, eps=0.5),
                ),
                "log_input_ignores_eps": dict(
                    arrays=dict(input=normal(5), target=uniform(0, 5, 5)), options=dict(eps=0.5)
                ),
                **{
                    f"stirling_boundary_log_input{log_input}": dict(
                        arrays=dict(input=uniform(0.5, 2, 7), target=STIRLING_TARGET),
                        options=dict(log_input=log_input, full=True),
                    )
                    for log_input in (True, False)
                },
                # A zero rate with log_input=False: log(eps) (36.84 for t = 2), and log(0) when eps = 0.
                **{
                    f"zero_rate_eps{eps}": dict(
                        arrays=dict(input=array(0.0, 0.0, 0.0, 1.0), target=array(0.0, 2.0, 1.0, 0.0)),
                        options=dict(log_input=False, eps=eps),
                    )
                    for eps in (1e-8, 0.0)
                },
                "huge_log_rates": dict(
                    arrays=dict(input=array(-1e9, 1e9, 100.0, -100.0), target=array(2.0, 0.5, 1.0, 3.0))
                ),
                "broadcast_target": dict(arrays=dict(input=normal(4, 3), target=uniform(0, 5, 3))),
                "broadcast_up": dict(arrays=dict(input=normal(4, 3), target=uniform(0, 5, 1, 4, 3))),
                # Integers are accepted: an integer input with a float target takes the target's dtype.
                "int_input_float_target": dict(
                    arrays=dict(input=rng.integers(0, 4, (4, 3)), target=uniform(0, 5, 4, 3)),
                    options=dict(full=True),
                    grad=("target",),
                ),
                # Booleans too (torch promotes them as integers here).
                "bool_input": dict(
                    arrays=dict(input=rng.uniform(size=(4, 3)) < 0.5, target=uniform(0, 5, 4, 3)), grad=("target",)
                ),
                "bool_target": dict(
                    arrays=dict(input=normal(4, 3), target=rng.uniform(size=(4, 3)) < 0.5), grad=("input",)
                ),
            },
            NONE,
        ),
    ],
)

# gaussian_nll_loss: var at and around the clamp (eps = 1e-6): exactly eps, below it, zero, far above.
GAUSSIAN_CASES = cases(
    "gaussian_nll_loss",
    ("input", "target", "var"),
    [
        (
            {
                name: dict(arrays=dict(input=normal(*shape), target=normal(*shape), var=uniform(0.1, 2, *shape)))
                for name, shape in SHAPES.items()
            },
            ALL,
        ),
        (
            {
                # The var shapes torch accepts besides input's own: S[:-1], and one mismatched axis of size 1.
                "2d_var_per_row": dict(arrays=dict(input=normal(4, 3), target=normal(4, 3), var=uniform(0.1, 2, 4))),
                "2d_var_column": dict(arrays=dict(input=normal(4, 3), target=normal(4, 3), var=uniform(0.1, 2, 4, 1))),
                "2d_var_row": dict(arrays=dict(input=normal(4, 3), target=normal(4, 3), var=uniform(0.1, 2, 1, 3))),
                "3d_var_middle1": dict(
                    arrays=dict(input=normal(2, 3, 4), target=normal(2, 3, 4), var=uniform(0.1, 2, 2, 1, 4))
                ),
                "3d_var_per_row": dict(
                    arrays=dict(input=normal(2, 3, 4), target=normal(2, 3, 4), var=uniform(0.1, 2, 2, 3))
                ),
                "1d_var_0dim": dict(arrays=dict(input=normal(5), target=normal(5), var=np.float64(0.7))),
                "empty_var_per_row": dict(arrays=dict(input=normal(0, 3), target=normal(0, 3), var=uniform(0.1, 2, 0))),
            },
            ("none", "mean"),
        ),
        (
            {
                "2d_full": dict(
                    arrays=dict(input=normal(4, 3), target=normal(4, 3), var=uniform(0.1, 2, 4, 3)),
                    options=dict(full=True),
                ),
                "2d_eps0.1": dict(
                    arrays=dict(input=normal(4, 3), target=normal(4, 3), var=uniform(0, 0.3, 4, 3)),
                    options=dict(eps=0.1),
                ),
                "clamp_boundary": dict(
                    arrays=dict(
                        input=array(0.5, -1.0, 0.003, 0.0, 0.0, 2.0, 1.0),
                        target=np.zeros(7),
                        var=array(1e-6, 5e-7, 0.0, 1e-6, 0.0, 1e-3, 2.0),
                    )
                ),
                # torch's promotion: integer means or samples take the floating operands' dtype.
                "int_input": dict(
                    arrays=dict(input=rng.integers(-2, 3, (4, 3)), target=normal(4, 3), var=uniform(0.1, 2, 4, 3)),
                    grad=("target", "var"),
                ),
                "int_target": dict(
                    arrays=dict(input=normal(4, 3), target=rng.integers(-2, 3, (4, 3)), var=uniform(0.1, 2, 4)),
                    grad=("input", "var"),
                ),
                "int_input_int_target": dict(
                    arrays=dict(
                        input=rng.integers(-2, 3, (4, 3)), target=rng.integers(-2, 3, (4, 3)), var=uniform(0.1, 2, 4, 3)
                    ),
                    grad=("var",),
                ),
                "clamp_boundary_full_var_per_row": dict(
                    arrays=dict(input=normal(3, 2) * 1e-3, target=normal(3, 2) * 1e-3, var=array(1e-6, 0.0, 5e-7)),
                    options=dict(full=True),
                ),
                "broadcast_target": dict(arrays=dict(input=normal(4, 3), target=normal(3), var=uniform(0.1, 2, 4, 3))),
                "broadcast_target_up": dict(
                    arrays=dict(input=normal(4, 3), target=normal(2, 4, 3), var=uniform(0.1, 2, 4, 1))
                ),
                # A Python float var: one variance for every element (no gradient: it is not an array).
                **{
                    f"2d_float_var{var}": dict(
                        arrays=dict(input=normal(4, 3), target=normal(4, 3)),
                        options=dict(var=var),
                        grad=("input", "target"),
                    )
                    for var in (0.7, 0.0)
                },
            },
            NONE,
        ),
    ],
)

CASES: list[Case] = [*KL_CASES, *POISSON_CASES, *GAUSSIAN_CASES]
"""Every case of the three losses, each run in float32 and float64, eagerly and under jit; the 2-D ones and a few
options also in float16 and bfloat16, under jit."""

# In 16 bits too (`Case.in_16_bit`): the 2-D variant of each loss in every reduction (kl_div's warned-about 'mean'
# too), and some options: kl_div's log-space targets, poisson_nll_loss's rates with the Stirling term and that term's
# boundary, gaussian_nll_loss's per-row and Python float variances.
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id.split("-")[1]
    in {
        "2d",
        "2d_log_target",
        "2d_rate_fullTrue",
        "stirling_boundary_log_inputTrue",
        "2d_var_per_row",
        "2d_float_var0.7",
    }
]
