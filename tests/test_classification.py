"""Parity of cross_entropy and nll_loss with torch, values and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from parity import MODES, check_raises, runs

import jaxloss.functional as F
from jaxloss import _classification
from jaxloss.parity._classification import CASES, class_weight, indices, logits, probabilities
from jaxloss.testing import assert_parity

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


# In float32 (the grid also holds 16-bit copies of some cases, under the same ids).
AXIS_CASES = [
    pytest.param(case, axis, id=f"{case}-axis{axis}")
    for case in CASES
    for variant, axes in (
        ("cross_entropy-4d_weight_ignore_smoothing-mean", (-1, 2)),
        ("cross_entropy-probs_4d_weight_smoothing-mean", (-1,)),
        ("nll_loss-4d_weight_ignore-none", (-1,)),
    )
    if case.id == variant and "float32" in case.dtypes
    for axis in axes
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case, axis", AXIS_CASES)
def test_axis_matches_torch_on_transposed_data(case, axis, mode):
    """`axis` puts the classes anywhere: equal to torch on the data with the classes moved back to axis 1."""
    ndim = case.arrays["input"].ndim

    def with_classes_at_axis(**arrays):
        """The loss of `arrays` after moving the class axis of `input` (and of a probability `target`) from 1 to
        `axis`: its gradients come back in torch's layout."""
        moved = {name: jnp.moveaxis(a, 1, axis) if a.ndim == ndim else a for name, a in arrays.items()}
        return getattr(F, case.loss)(**moved, **case.options, axis=axis)

    torch_loss = functools.partial(getattr(torch.nn.functional, case.loss), **case.options)
    assert_parity(with_classes_at_axis, torch_loss, case.arrays, grad=case.grad, dtypes=("float32",), modes=(mode,))


def test_axis_zero_takes_classes_first():
    x, t = logits(4, 6, rng=rng), indices(6, 4, rng=rng)
    expected = torch.nn.functional.cross_entropy(torch.tensor(x.T, dtype=torch.float32), torch.tensor(t))
    np.testing.assert_allclose(F.cross_entropy(jnp.asarray(x, jnp.float32), t, axis=0), expected, rtol=2e-6)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint32])
def test_any_integer_target_dtype(loss, dtype):
    """torch takes int64 and uint8 only; jaxloss takes every integer dtype, with the same result."""
    x, t = logits(6, 4, rng=rng).astype(np.float32), indices(6, 4, rng=rng)
    w = class_weight(4, rng=rng).astype(np.float32)
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
    x, t = logits(5, 3, rng=rng).astype(np.float32), np.array([0, 255, 1, 255, 2], np.uint8)
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
    x, p, w = logits(6, 4, rng=rng), probabilities(6, 4, rng=rng), 3 * class_weight(4, rng=rng)  # truncated for int32
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
    x, t = logits(3, 6, 4, rng=rng).astype(np.float32), indices((3, 6), 4, ignored=2, rng=rng)
    w = class_weight(4, rng=rng).astype(np.float32)
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


X = jnp.asarray(logits(5, 3, rng=rng), jnp.float32)
T = jnp.asarray(indices(5, 3, rng=rng))


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
    input=logits(6, 4, rng=rng), target=np.array([1, 0, -100, 3, 2, 1]), weight=class_weight(4, rng=rng)
)  # one ignored target
SMOOTHING_PROBS = dict(
    input=logits(6, 4, rng=rng), target=probabilities(6, 4, rng=rng), weight=class_weight(4, rng=rng)
)
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
    input = jnp.asarray(logits(4, 3, rng=rng), jnp.float32).at[1, 2].set(-jnp.inf)
    target, weight = jnp.array([0, 1, 0, -100]), jnp.asarray(class_weight(3, rng=rng), jnp.float32)

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
    # Shapes of no other test.
    input, target = jnp.asarray(logits(5, 7, rng=rng), jnp.float32), jnp.asarray(indices(5, 7, rng=rng))

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
