"""Parity of cross_entropy and nll_loss with torch, values and gradients."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from parity import (
    DTYPES,
    LOW_PRECISION,
    MODES,
    TOLERANCES,
    assert_close,
    check_low_precision,
    check_parity,
    check_raises,
    grid,
    jaxloss_value_and_grads,
    torch_value_and_grads,
)

import jaxloss.functional as F
from jaxloss import _classification

rng = np.random.default_rng(0)
INF = np.inf


def logits(*shape):
    return 2 * rng.standard_normal(shape)


def indices(shape, num_classes, ignored=0, ignore_index=-100):
    """Class indices in [0, num_classes), the first `ignored` (in C order) set to `ignore_index`."""
    target = rng.integers(0, num_classes, shape)
    target.reshape(-1)[:ignored] = ignore_index
    return target


def probabilities(*shape, axis=1):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=axis, keepdims=True)


def class_weight(num_classes):
    return rng.uniform(0.2, 2.0, num_classes)


def index_case(input, target, **options):
    return dict(arrays=dict(input=input, target=target), options=options, grad=("input",))


def weighted_index_case(input, target, **options):
    case = index_case(input, target, **options)
    case["arrays"]["weight"] = class_weight(input.shape[0 if input.ndim == 1 else 1])
    return case


def probability_case(input, target, weighted=False, **options):
    arrays = dict(input=input, target=target)
    if weighted:
        arrays["weight"] = class_weight(input.shape[0 if input.ndim == 1 else 1])
    return dict(arrays=arrays, options=options, grad=("input", "target"))


def with_reductions(loss, table):
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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GRID, ids=str)
def test_parity(case, dtype, mode):
    check_parity(case, dtype, mode)


@pytest.mark.parametrize("case", EDGES, ids=str)
def test_edge_parity(case):
    check_parity(case, "f64", "jit")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", EXTREMES, ids=str)
def test_extreme_parity(case, mode):
    """In float32, where 1e9 and the infinities bite hardest; eagerly and under jit, which XLA may simplify
    differently (e.g. ``inf * 0`` from a masking product)."""
    check_parity(case, "f32", mode)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize(
    "case",
    [
        c
        for c in GRID
        if c.id.endswith("-mean")
        and c.id.split("-")[1] in ("2d_weight_ignore_smoothing", "probs_4d_weight_smoothing", "4d_weight_ignore")
    ],
    ids=str,
)
def test_low_precision(case, dtype):
    check_low_precision(case, dtype)


def moved_case(case, axis):
    """`case` with the class axis of `input` (and of a probability `target`) moved from 1 to `axis`."""
    ndim = case.arrays["input"].ndim
    arrays = {name: np.moveaxis(value, 1, axis) if value.ndim == ndim else value for name, value in case.arrays.items()}
    return dataclasses.replace(case, arrays=arrays, jax_options={"axis": axis})


AXIS_CASES = [
    pytest.param(case, axis, id=f"{case}-axis{axis}")
    for case in GRID
    for variant, axes in (
        ("cross_entropy-4d_weight_ignore_smoothing-mean", (-1, 2)),
        ("cross_entropy-probs_4d_weight_smoothing-mean", (-1,)),
        ("nll_loss-4d_weight_ignore-none", (-1,)),
    )
    if case.id == variant
    for axis in axes
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case, axis", AXIS_CASES)
def test_axis_matches_torch_on_transposed_data(case, axis, mode):
    """`axis` puts the classes anywhere: equal to torch on the data with the classes moved back to axis 1."""
    expected, cotangent, expected_grads = torch_value_and_grads(case, np.float32)
    value, grads = jaxloss_value_and_grads(moved_case(case, axis), np.float32, cotangent, mode)
    tolerance = TOLERANCES[np.float32]
    assert_close(value, expected, f"{case} axis={axis} value", tolerance)
    for name, grad in grads.items():
        if grad.ndim == case.arrays["input"].ndim:
            grad = np.moveaxis(grad, axis, 1)
        assert_close(grad, expected_grads[name], f"{case} axis={axis} d/d{name}", tolerance)


def test_axis_zero_takes_classes_first():
    x, t = logits(4, 6), indices(6, 4)
    expected = torch.nn.functional.cross_entropy(torch.tensor(x.T, dtype=torch.float32), torch.tensor(t))
    np.testing.assert_allclose(F.cross_entropy(jnp.asarray(x, jnp.float32), t, axis=0), expected, rtol=2e-6)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint32])
def test_any_integer_target_dtype(loss, dtype):
    """torch takes int64 and uint8 only; jaxloss takes every integer dtype, with the same result."""
    x, t, w = logits(6, 4).astype(np.float32), indices(6, 4), class_weight(4).astype(np.float32)
    for weight in (None, w):
        expected = getattr(torch.nn.functional, loss)(
            torch.tensor(x),
            torch.tensor(t),
            weight=None if weight is None else torch.tensor(weight),
            reduction="none",
        )
        value = getattr(F, loss)(jnp.asarray(x), jnp.asarray(t.astype(dtype)), weight=weight, reduction="none")
        np.testing.assert_allclose(value, expected, rtol=2e-6)


def test_ignore_index_beyond_the_target_dtype():
    """uint8 targets take ignore_index=255; an ignore_index that the target's dtype cannot hold (the default -100
    for uint8, 2**40 for int32) ignores nothing, and overflows nothing."""
    x, t = logits(5, 3).astype(np.float32), np.array([0, 255, 1, 255, 2], np.uint8)
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=255)
    np.testing.assert_allclose(F.cross_entropy(x, jnp.asarray(t), ignore_index=255), expected, rtol=2e-6)
    t = np.array([0, 1, 2, 1, 0])
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t))
    np.testing.assert_allclose(F.cross_entropy(x, jnp.asarray(t.astype(np.uint8))), expected, rtol=2e-6)
    np.testing.assert_allclose(
        F.nll_loss(x, jnp.asarray(t, jnp.int32), ignore_index=2**40),
        torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(t), ignore_index=2**40),
        rtol=2e-6,
    )


@pytest.mark.parametrize(
    "input_dtype, target_dtype, weight_dtype",
    [
        (np.float64, np.float32, None),
        (np.float32, np.float64, None),
        (np.float32, np.float32, np.float64),
        (np.float64, np.float64, np.float32),
        (np.float32, np.float32, np.int32),
    ],
)
def test_probability_targets_promote_dtypes_like_torch(input_dtype, target_dtype, weight_dtype):
    x, p, w = logits(6, 4), probabilities(6, 4), 3 * class_weight(4)  # truncated for int32
    as_torch = lambda a, d: None if d is None else torch.tensor(a.astype(d))  # noqa: E731
    expected = torch.nn.functional.cross_entropy(
        as_torch(x, input_dtype), as_torch(p, target_dtype), weight=as_torch(w, weight_dtype), label_smoothing=0.1
    )
    with jax.enable_x64(True):
        value = F.cross_entropy(
            jnp.asarray(x.astype(input_dtype)),
            jnp.asarray(p.astype(target_dtype)),
            weight=None if weight_dtype is None else jnp.asarray(w.astype(weight_dtype)),
            label_smoothing=0.1,
        )
        assert value.dtype == np.dtype(str(expected.dtype).removeprefix("torch."))
        np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_vmap():
    """vmap over problems equals one call per problem, and torch."""
    x, t = logits(3, 6, 4).astype(np.float32), indices((3, 6), 4, ignored=2)
    w = class_weight(4).astype(np.float32)
    loss = lambda x, t: F.cross_entropy(x, t, weight=w, label_smoothing=0.1)  # noqa: E731
    batched = jax.vmap(loss)(x, t)
    expected = [
        torch.nn.functional.cross_entropy(
            torch.tensor(x[i]), torch.tensor(t[i]), weight=torch.tensor(w), label_smoothing=0.1
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(batched, np.array(expected), rtol=2e-6)
    grads = jax.vmap(jax.grad(lambda x, t: F.nll_loss(x, t, reduction="sum")))(x, t)
    np.testing.assert_allclose(grads, np.stack([jax.grad(F.nll_loss)(x[i], t[i], reduction="sum") for i in range(3)]))


X = jnp.asarray(logits(5, 3), jnp.float32)
T = jnp.asarray(indices(5, 3))


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_bad_input(loss):
    fn = getattr(F, loss)
    check_raises(lambda: fn(jnp.float32(1.0), jnp.int32(0)), ValueError, "`input` must have at least 1 dimension")
    check_raises(lambda: fn(X.astype(jnp.int32), T), TypeError, "`input` must be a floating-point array")
    check_raises(lambda: fn(X, T[:4]), ValueError, r"`target` of class indices must have shape \(5,\)")
    check_raises(lambda: fn(X, T[:, None]), ValueError, r"must have shape \(5,\)")
    check_raises(
        lambda: fn(jnp.ones((2, 3, 4, 5)), jnp.zeros((2, 4, 6), int)), ValueError, r"must have shape \(2, 4, 5\)"
    )
    check_raises(lambda: fn(jnp.ones((2, 3, 4, 5)), jnp.zeros((2, 4), int)), ValueError, "must have shape")
    check_raises(lambda: fn(X, T > 0), TypeError, "`target` must be an integer array")
    check_raises(lambda: fn(X, T.astype(jnp.float32)), TypeError, "`target` must be an integer array")
    check_raises(lambda: fn(X, T, weight=jnp.ones(4)), ValueError, r"`weight` must have shape \(3,\)")
    check_raises(lambda: fn(X, T, weight=jnp.ones((1, 3))), ValueError, r"`weight` must have shape \(3,\)")
    for weight_dtype in (jnp.float16, jnp.int32):
        check_raises(lambda: fn(X, T, weight=jnp.ones(3, weight_dtype)), TypeError, "`weight` must have the dtype")
    check_raises(lambda: fn(X, T, reduction="batchmean"), ValueError, "`reduction` must be one of")
    check_raises(lambda: fn(X, T, axis=2), ValueError, "`axis` must be an axis of `input`")
    check_raises(lambda: fn(X, T, ignore_index=1.5), TypeError, "`ignore_index` must be an int")
    # torch's forward reads a (1,) target of an unbatched input as its class, but its backward fails on it.
    check_raises(lambda: fn(X[0], T[:1]), ValueError, r"must have shape \(\)")


def test_weight_dtype_must_match_input_under_x64():
    with jax.enable_x64(True):
        check_raises(
            lambda: F.cross_entropy(X.astype(jnp.float64), T, weight=jnp.ones(3, jnp.float32)),
            TypeError,
            r"`weight` must have the dtype of `input` \(float64\); got float32",
        )


def test_bad_cross_entropy_target_and_options():
    ce = F.cross_entropy
    check_raises(
        lambda: ce(X, jnp.ones((5, 4))),
        ValueError,
        r"`target` must be class indices of shape \(5,\) or class probabilities",
    )
    check_raises(lambda: ce(X, jnp.ones((5, 3), jnp.int32)), TypeError, "holds class probabilities and must be")
    check_raises(lambda: ce(X, X > 0), TypeError, "holds class probabilities and must be floating-point")
    check_raises(lambda: ce(X, T, label_smoothing=1.5), ValueError, "`label_smoothing` must be at most 1.0")
    check_raises(lambda: ce(X, X, label_smoothing=1.5), ValueError, "`label_smoothing` must be at most 1.0")
    check_raises(lambda: ce(X, X, ignore_index=0), ValueError, "`ignore_index` must be negative")
    check_raises(lambda: ce(X, X, weight=jnp.ones(4)), ValueError, r"`weight` must have shape \(3,\)")


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [3, -1, 2**31 - 1])
def test_out_of_range_target(loss, bad):
    """torch raises IndexError; jaxloss raises ValueError eagerly and gives NaN there under jit."""
    fn = getattr(F, loss)
    target = jnp.array([0, bad, 2, -100, 1])
    message = r"`target` must hold class indices in \[0, 3\) or `ignore_index` \(-100\)"
    with pytest.raises(ValueError, match=message):
        fn(X, target)
    with pytest.raises(ValueError, match=message):
        jax.grad(fn)(X, target)
    with pytest.raises(IndexError):
        getattr(torch.nn.functional, loss)(torch.tensor(np.asarray(X)), torch.tensor(np.asarray(target, np.int64)))
    none = jax.jit(fn, static_argnames="reduction")(X, target, reduction="none")
    np.testing.assert_array_equal(np.isnan(none), [False, True, False, False, False])
    assert np.isnan(jax.jit(fn)(X, target))
    assert np.isnan(jax.jit(fn, static_argnames="reduction")(X, target, reduction="sum"))


def test_seed_lesson_number():
    """The lesson's CrossEntropyLoss example: 1.1019, through jaxloss and torch."""
    x, t = [[0.1, 0.2, 0.3]], [1]
    expected = torch.nn.CrossEntropyLoss()(torch.tensor(x), torch.tensor(t))
    assert float(expected) == pytest.approx(1.1019, abs=1e-4)
    assert float(F.cross_entropy(jnp.array(x), jnp.array(t))) == pytest.approx(float(expected), rel=1e-6)


# ------------------------------------------------------------------------------------------------------------
# label_smoothing is data: traced, differentiated, checked as a value under jit (see also test_float_options.py).

SMOOTHING_INDEX = dict(
    input=logits(6, 4), target=np.array([1, 0, -100, 3, 2, 1]), weight=class_weight(4)
)  # one ignored target
SMOOTHING_PROBS = dict(input=logits(6, 4), target=probabilities(6, 4), weight=class_weight(4))
SMOOTHING_TARGETS = {"index": SMOOTHING_INDEX, "probs": SMOOTHING_PROBS}


def torch_cross_entropy(arrays, dtype=np.float64, **options):
    """torch's loss and its gradient with respect to `input` (the cotangent: ones)."""
    input = torch.tensor(arrays["input"].astype(dtype), requires_grad=True)
    target = arrays["target"]
    target = torch.tensor(target.astype(dtype) if target.dtype.kind == "f" else target)
    loss = torch.nn.functional.cross_entropy(
        input, target, weight=torch.tensor(arrays["weight"].astype(dtype)), **options
    )
    (grad,) = torch.autograd.grad(loss.sum(), input)
    return loss.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_label_smoothing_derivatives(targets):
    """d/dε, and the derivatives in the logits and ε together, by finite differences (orders 1 and 2, forward
    and reverse mode), per position."""
    arrays = SMOOTHING_TARGETS[targets]
    with jax.enable_x64(True):
        input, target, weight = (jnp.asarray(arrays[name]) for name in ("input", "target", "weight"))

        def loss(input, eps):
            return F.cross_entropy(input, target, weight, reduction="none", label_smoothing=eps)

        check_grads(lambda eps: loss(input, eps), (0.3,), order=2, modes=("fwd", "rev"))
        check_grads(loss, (input, 0.3), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_label_smoothing_derivative_is_the_formulas(targets, reduction):
    """The loss is linear in ε > 0, so d/dε is the loss at ε = 1 minus the loss at ε = 0 (``R(smooth) / C −
    R(nll)`` for class indices), at every ε in (0, 1]; 0 for ε <= 0 (no smoothing), at 0 included."""
    arrays = SMOOTHING_TARGETS[targets]
    with jax.enable_x64(True):
        input, target, weight = (jnp.asarray(arrays[name]) for name in ("input", "target", "weight"))

        def loss(eps):
            return F.cross_entropy(input, target, weight, reduction=reduction, label_smoothing=eps)

        slope = loss(1.0) - loss(0.0)
        for eps in (0.05, 0.3, 1.0):
            np.testing.assert_allclose(jax.jacfwd(loss)(eps), slope, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(jax.jacrev(loss)(eps), slope, rtol=1e-12, atol=1e-14)
        for eps in (-0.4, 0.0):
            np.testing.assert_array_equal(jax.jacrev(loss)(eps), np.zeros_like(slope))


@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_traced_label_smoothing_matches_torch(targets):
    """ε traced by the caller's jit: torch's values and gradients for the Python value, ε <= 0 and NaN included
    (no smoothing)."""
    arrays = SMOOTHING_TARGETS[targets]
    with jax.enable_x64(True):
        input, target, weight = (jnp.asarray(arrays[name]) for name in ("input", "target", "weight"))

        @jax.jit
        def value_and_grad(input, eps):
            loss = lambda input: F.cross_entropy(input, target, weight, reduction="none", label_smoothing=eps)  # noqa: E731
            value, vjp = jax.vjp(loss, input)
            return value, vjp(jnp.ones_like(value))[0]

        for eps in (-0.5, 0.0, 0.1, 0.45, 1.0, float("nan")):
            expected, expected_grad = torch_cross_entropy(arrays, reduction="none", label_smoothing=eps)
            value, grad = value_and_grad(input, eps)
            np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14, err_msg=f"ε={eps}")
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-14, err_msg=f"ε={eps}")


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_traced_label_smoothing_off_leaks_nothing(reduction):
    """A traced ε <= 0 computes the smoothing part and drops it: with a -inf logit (the part is infinite) the
    values and the derivatives of every operand, forward and reverse, are those of ε = 0 known before the call
    (no smoothing compiled); ε's own derivative is 0."""
    input = jnp.asarray(logits(4, 3), jnp.float32).at[1, 2].set(-jnp.inf)
    target, weight = jnp.array([0, 1, 0, -100]), jnp.asarray(class_weight(3), jnp.float32)

    def loss(input, weight, eps):
        return jnp.sum(F.cross_entropy(input, target, weight, reduction=reduction, label_smoothing=eps))

    expected = jax.value_and_grad(loss, (0, 1))(input, weight, 0.0)
    tangents = (jnp.ones_like(input), jnp.ones_like(weight))
    expected_tangent = jax.jvp(lambda i, w: loss(i, w, 0.0), (input, weight), tangents)[1]
    for eps in (0.0, -0.3, float("nan")):
        value, grads = jax.jit(jax.value_and_grad(loss, (0, 1, 2)))(input, weight, eps)
        np.testing.assert_array_equal(value, expected[0])
        for grad, expected_grad in zip(grads[:2], expected[1], strict=True):
            np.testing.assert_array_equal(grad, expected_grad)
        assert grads[2] == 0
        tangent = jax.jit(lambda i, w, e: jax.jvp(lambda i, w: loss(i, w, e), (i, w), tangents)[1])(input, weight, eps)
        np.testing.assert_array_equal(tangent, expected_tangent)
    assert np.all(np.isfinite(expected[1][1]))  # the weight's gradient, which 0 · inf would have made NaN


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_label_smoothing_above_one_is_a_value_check(targets, reduction):
    """ε > 1: ValueError naming it when its value is known (eagerly, eager grad); traced, a NaN loss and NaN
    derivatives for every operand (and ε)."""
    arrays = SMOOTHING_TARGETS[targets]
    input, target, weight = (jnp.asarray(arrays[name], jnp.float32) for name in ("input", "target", "weight"))
    if targets == "index":
        target = jnp.asarray(arrays["target"])

    def loss(input, target, weight, eps):
        return jnp.sum(F.cross_entropy(input, target, weight, reduction=reduction, label_smoothing=eps))

    message = r"cross_entropy: `label_smoothing` must be at most 1.0; got 1.5"
    for eps in (1.5, np.float32(1.5), jnp.float32(1.5)):
        with pytest.raises(ValueError, match=message):
            loss(input, target, weight, eps)
    with pytest.raises(ValueError, match=message):
        jax.grad(loss, 3)(input, target, weight, 1.5)
    argnums = (0, 2, 3) if targets == "index" else (0, 1, 2, 3)
    value, grads = jax.jit(jax.value_and_grad(loss, argnums))(input, target, weight, 1.5)
    assert np.isnan(value)
    for grad in grads:
        assert np.all(np.isnan(grad))
    none = jax.jit(lambda e: F.cross_entropy(input, target, weight, reduction="none", label_smoothing=e))(1.5)
    assert np.all(np.isnan(none))


def test_label_smoothing_known_off_compiles_without_the_smoothing_term():
    """ε known before the call to be <= 0 or NaN (the default included) compiles the loss without its class
    reduction; positive Python values share the compilation that has it, and a traced ε uses that one too."""
    input, target = jnp.asarray(logits(5, 7), jnp.float32), jnp.asarray(indices(5, 7))  # shapes of no other test

    def core_jaxpr(loss, *args):
        """The jaxpr of the jitted core that `loss` calls (where ε is an input, not a literal)."""
        (call,) = jax.make_jaxpr(loss)(input, *args).eqns
        return str(call.params["jaxpr"])

    def jaxpr(eps):
        return core_jaxpr(lambda x: F.cross_entropy(x, target, label_smoothing=eps))

    off = jaxpr(0.0)
    for eps in (-0.5, float("nan"), np.float32(0), jnp.array(-1.0)):
        assert jaxpr(eps) == off
    assert core_jaxpr(lambda x: F.cross_entropy(x, target)) == off
    on = jaxpr(0.1)
    assert on != off and off.count("reduce_sum") < on.count("reduce_sum")
    assert jaxpr(1) == jaxpr(jnp.array(0.2)) == on
    assert core_jaxpr(lambda x, eps: F.cross_entropy(x, target, label_smoothing=eps), 0.0) == on  # traced

    core = _classification.cross_entropy_with_failures.jitted
    before = core._cache_size()
    F.cross_entropy(input, target)
    for eps in (0.0, -0.5, float("nan")):
        F.cross_entropy(input, target, label_smoothing=eps)
    assert core._cache_size() == before + 1
    for eps in (0.1, 0.3, 1, np.float64(0.2)):
        F.cross_entropy(input, target, label_smoothing=eps)
    assert core._cache_size() == before + 2
