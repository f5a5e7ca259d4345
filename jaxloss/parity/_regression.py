"""The parity grid of the regression losses: l1_loss, mse_loss, smooth_l1_loss and huber_loss.

Every loss in every reduction on a scalar, 1-D, 2-D, 4-D and empty input; on differences that sit exactly on the
kinks (d = 0, and |d| = β or δ for the values of β and δ tried); on infinite and NaN differences; with a weight
(l1_loss, mse_loss, huber_loss); and with torch's type promotion of integer and boolean operands and weights.
Both operands are differentiated wherever they are floating.
"""

from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)


def normal(*shape: int, rng: np.random.Generator = rng) -> np.ndarray:
    """Standard normal values of `shape`, drawn from `rng` (the grid's generator unless given another)."""
    return rng.standard_normal(shape)


# Differences that sit exactly on the kinks: d = 0, |d| = 0.5, |d| = 1 and |d| = 2 (beta/delta values below).
KINK_INPUT = np.array([0.0, 1.0, 2.0, -1.0, 0.5, 3.0, -2.0, 1.5])
KINK_TARGET = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.5])


# Infinite and NaN differences, where torch's hand-written gradients stay finite (or NaN) in its own way.
NONFINITE_INPUT = np.array([np.inf, -np.inf, np.nan, 1e30])


def regression_variants(weighted: bool, **options: float) -> dict[str, dict[str, Any]]:
    """The shape and value variants of a regression loss called with `options`, with a weighted one if
    `weighted`; both operands differentiated."""
    variants: dict[str, dict[str, Any]] = {
        "scalar": dict(arrays=dict(input=normal(), target=normal())),
        "1d": dict(arrays=dict(input=normal(7), target=normal(7))),
        "2d": dict(arrays=dict(input=normal(4, 3), target=normal(4, 3))),
        "4d": dict(arrays=dict(input=normal(2, 3, 4, 5), target=normal(2, 3, 4, 5))),
        "kinks": dict(arrays=dict(input=KINK_INPUT, target=KINK_TARGET)),
        "nonfinite": dict(arrays=dict(input=NONFINITE_INPUT, target=np.zeros(4))),
        "empty": dict(arrays=dict(input=normal(0, 3), target=normal(0, 3))),
    }
    if weighted:
        variants["2d_weight"] = dict(
            arrays=dict(input=normal(4, 3), target=normal(4, 3), weight=rng.uniform(0, 2, (4, 3)))
        )
    for variant in variants.values():
        variant["grad"] = ("input", "target")
        variant["options"] = options
    return variants


# torch's type promotion: an integer operand takes the floating operand's dtype, and the floating one is
# differentiated; integer and boolean weights too. (huber_loss's integer targets: tests/test_regression.py,
# `test_huber_mixed_dtypes_like_torch`.)
PROMOTED_OPERANDS = {
    "int_target": dict(arrays=dict(input=normal(4, 3), target=rng.integers(-2, 3, (4, 3))), grad=("input",)),
    "int_input": dict(arrays=dict(input=rng.integers(-2, 3, (4, 3)), target=normal(4, 3)), grad=("target",)),
}
PROMOTED_WEIGHTS = {
    f"{kind}_weight": dict(
        arrays=dict(input=normal(4, 3), target=normal(4, 3), weight=weight), grad=("input", "target")
    )
    for kind, weight in (("int", rng.integers(0, 3, (4, 3))), ("bool", rng.uniform(size=(4, 3)) < 0.5))
}
# Booleans are accepted where torch's kernel promotes them (mse_loss without weight, smooth_l1_loss).
BOOLEAN_OPERANDS = {
    "bool_target": dict(arrays=dict(input=normal(4, 3), target=rng.uniform(size=(4, 3)) < 0.5), grad=("input",)),
    "bool_input": dict(arrays=dict(input=rng.uniform(size=(4, 3)) < 0.5, target=normal(4, 3)), grad=("target",)),
}


CASES: list[Case] = [
    *grid("l1_loss", regression_variants(weighted=True)),
    *grid("mse_loss", regression_variants(weighted=True)),
    *grid("smooth_l1_loss", regression_variants(weighted=False)),
    *[
        case
        for beta in (0.0, 0.5, 2.0)
        for case in grid("smooth_l1_loss", {f"beta{beta}": regression_variants(False, beta=beta)["kinks"]})
    ],
    *grid("huber_loss", regression_variants(weighted=True)),
    *[case for loss in ("l1_loss", "mse_loss", "smooth_l1_loss") for case in grid(loss, PROMOTED_OPERANDS)],
    *[case for loss in ("l1_loss", "mse_loss", "huber_loss") for case in grid(loss, PROMOTED_WEIGHTS)],
    *[case for loss in ("mse_loss", "smooth_l1_loss") for case in grid(loss, BOOLEAN_OPERANDS)],
    *[
        case
        for delta in (0.5, 2.0)
        for case in grid("huber_loss", {f"delta{delta}": regression_variants(True, delta=delta)["kinks"]})
    ],
]
"""Every case of the regression losses, each run in float32 and float64, eagerly and under jit; the 2-D (also
weighted) and kink cases also in float16 and bfloat16, under jit."""

# In 16 bits too (`Case.in_16_bit`): a sample: the 2-D cases (weighted too, where the loss takes a weight) and the
# kinks, every reduction; the kinks' differences (0, ±0.5, ±1, ±2) are exact in 16 bits, so the subgradient chosen at
# each kink is checked in 16 bits too.
CASES += [case.in_16_bit() for case in CASES if "-2d" in case.id or "-kinks" in case.id]
