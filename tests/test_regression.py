"""Parity of l1_loss, mse_loss, smooth_l1_loss and huber_loss with torch, values and gradients."""

import jax.numpy as jnp
import numpy as np
import pytest
from parity import DTYPES, LOW_PRECISION, MODES, check_low_precision, check_parity, check_raises, grid

import jaxloss.functional as F

rng = np.random.default_rng(0)


def normal(*shape):
    return rng.standard_normal(shape)


# Differences that sit exactly on the kinks: d = 0, |d| = 0.5, |d| = 1 and |d| = 2 (beta/delta values below).
KINK_INPUT = np.array([0.0, 1.0, 2.0, -1.0, 0.5, 3.0, -2.0, 1.5])
KINK_TARGET = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.5])


# Infinite and NaN differences, where torch's hand-written gradients stay finite (or NaN) in its own way.
NONFINITE_INPUT = np.array([np.inf, -np.inf, np.nan, 1e30])


def regression_variants(weighted: bool, **options):
    variants = {
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


CASES = [
    *grid("l1_loss", regression_variants(weighted=True)),
    *grid("mse_loss", regression_variants(weighted=True)),
    *grid("smooth_l1_loss", regression_variants(weighted=False)),
    *[
        case
        for beta in (0.0, 0.5, 2.0)
        for case in grid("smooth_l1_loss", {f"beta{beta}": regression_variants(False, beta=beta)["kinks"]})
    ],
    *grid("huber_loss", regression_variants(weighted=True)),
    *[
        case
        for delta in (0.5, 2.0)
        for case in grid("huber_loss", {f"delta{delta}": regression_variants(True, delta=delta)["kinks"]})
    ],
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_parity(case, dtype, mode):
    check_parity(case, dtype, mode)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("case", [c for c in CASES if "-2d" in c.id or "-kinks" in c.id], ids=str)
def test_low_precision(case, dtype):
    check_low_precision(case, dtype)


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_broadcast_target_warns_like_torch(loss):
    case = grid(loss, {"broadcast": dict(arrays=dict(input=normal(4, 3), target=normal(3)), grad=("input", "target"))})[
        0
    ]
    with pytest.warns(UserWarning, match="target size"):
        check_parity(case, "f32", "eager")


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_bad_input(loss):
    fn = getattr(F, loss)
    x = jnp.ones((4, 3))
    check_raises(lambda: fn(x, x, reduction="avg"), ValueError, "`reduction` must be one of")
    check_raises(lambda: fn(x.astype(jnp.int32), x), TypeError, "`input` must be a floating-point array")
    check_raises(lambda: fn(x, jnp.ones((4, 2))), ValueError, "do not broadcast")


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "huber_loss"])
def test_weight_must_match_input(loss):
    x = jnp.ones((4, 3))
    check_raises(lambda: getattr(F, loss)(x, x, weight=jnp.ones(3)), ValueError, "`weight` must have the same shape")


def test_bad_beta_and_delta():
    x = jnp.ones(3)
    check_raises(lambda: F.smooth_l1_loss(x, x, beta=-1.0), ValueError, "`beta` must be non-negative")
    check_raises(lambda: F.huber_loss(x, x, delta=0.0), ValueError, "`delta` must be positive")


def test_seed_lesson_numbers():
    """The numbers the torch lessons print, through jaxloss."""
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 2.0, 5.0])
    assert float(F.l1_loss(x, y)) == pytest.approx(0.6667, abs=1e-4)
    assert float(F.l1_loss(x, y, reduction="sum")) == 2.0
    sample, target = jnp.ones((2, 2)), jnp.array([[0.0, 1.0], [2.0, 3.0]])
    assert float(F.l1_loss(sample, target)) == 1.0
    assert float(F.smooth_l1_loss(sample, target)) == 0.625
    assert float(F.mse_loss(sample, target)) == 1.5
