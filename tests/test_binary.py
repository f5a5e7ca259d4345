"""Parity of binary_cross_entropy, binary_cross_entropy_with_logits, soft_margin_loss and
multilabel_soft_margin_loss with torch, values and gradients.

Every expected value is torch's, computed in the test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from parity import DTYPES, check_raises, runs

import jaxloss.functional as F
from jaxloss.parity._binary import CASES, labels, normal, probabilities

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


# --- gradients torch does not have ---------------------------------------------------------------------------------


def test_weight_gradients_are_the_unweighted_losses():
    """torch refuses to differentiate BCE's and BCE-with-logits' `weight`; d(Σ w ℓ)/dw is torch's ℓ."""
    x, t, w = probabilities(4, 3, rng=rng), probabilities(4, 3, rng=rng), rng.uniform(0, 2, 3)
    for loss, input in (("binary_cross_entropy", x), ("binary_cross_entropy_with_logits", normal(4, 3, rng=rng))):
        expected = getattr(torch.nn.functional, loss)(torch.tensor(input), torch.tensor(t), reduction="none")
        with jax.enable_x64(True):
            grad = jax.grad(lambda w: getattr(F, loss)(jnp.asarray(input), jnp.asarray(t), w, reduction="sum"))(
                jnp.asarray(w)
            )
        np.testing.assert_allclose(grad, expected.numpy().sum(0), rtol=1e-12)  # summed over the broadcast rows


def test_pos_weight_gradient():
    """torch refuses to differentiate `pos_weight`; ours is the derivative of torch's formula, by torch autograd."""
    x, t, p = normal(4, 3, rng=rng), probabilities(4, 3, rng=rng), rng.uniform(0.5, 3, 3)
    pw = torch.tensor(p, requires_grad=True)
    tx, tt = torch.tensor(x), torch.tensor(t)
    formula = -(pw * tt * torch.nn.functional.logsigmoid(tx) + (1 - tt) * torch.nn.functional.logsigmoid(-tx))
    (expected,) = torch.autograd.grad(formula.mean(), pw)
    with jax.enable_x64(True):
        grad = jax.grad(lambda p: F.binary_cross_entropy_with_logits(jnp.asarray(x), jnp.asarray(t), pos_weight=p))(
            jnp.asarray(p)
        )
    np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-12)


def test_soft_margin_target_gradient():
    """torch refuses to differentiate soft_margin_loss's target; ours is that of log(1 + exp(-t x)), by torch."""
    x, t = normal(4, 3, rng=rng), normal(4, 3, rng=rng)
    tt = torch.tensor(t, requires_grad=True)
    (expected,) = torch.autograd.grad(torch.log1p(torch.exp(-tt * torch.tensor(x))).mean(), tt)
    with jax.enable_x64(True):
        grad = jax.grad(lambda t: F.soft_margin_loss(jnp.asarray(x), t))(jnp.asarray(t))
    np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_margin_overflow_deviation(dtype):
    """Where torch's log1p(exp(-t x)) overflows (inf, gradient NaN), jaxloss gives torch's own stable
    softplus(-t x): the exact value -t x and gradient -t."""
    dtype = np.dtype(dtype)
    x = np.array([-100.0, -89.0, 200.0, -1000.0, -1e9, -np.inf], dtype)
    t = np.array([1.0, 1.0, -1.0, 1.0, 1.0, 1.0], dtype)
    overflowing = torch.nn.functional.soft_margin_loss(torch.tensor(x), torch.tensor(t), reduction="none")
    tx = torch.tensor(x, requires_grad=True)
    stable = torch.nn.functional.softplus(-torch.tensor(t) * tx)
    (stable_grad,) = torch.autograd.grad(stable.sum(), tx)
    with jax.enable_x64(dtype == np.float64):
        value = F.soft_margin_loss(jnp.asarray(x), jnp.asarray(t), reduction="none")
        grad = jax.grad(lambda x: F.soft_margin_loss(x, jnp.asarray(t), reduction="sum"))(jnp.asarray(x))
    assert np.isinf(overflowing.numpy()[3:]).all()  # the deviation is real: torch overflows here
    np.testing.assert_allclose(value, stable.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad, stable_grad.numpy(), rtol=1e-6)


# --- dtypes, vmap, optax ---------------------------------------------------------------------------------------------

MIXED_DTYPES = [
    ("binary_cross_entropy_with_logits", "float32", "float64"),
    ("binary_cross_entropy_with_logits", "float64", "float32"),  # torch returns the target's dtype
    ("binary_cross_entropy_with_logits", "float32", "float16"),
    ("soft_margin_loss", "float32", "float64"),  # the input's dtype
    ("soft_margin_loss", "float64", "float32"),
    ("soft_margin_loss", "float16", "int32"),
    ("multilabel_soft_margin_loss", "float32", "float64"),
    ("multilabel_soft_margin_loss", "float16", "float32"),
    ("multilabel_soft_margin_loss", "float32", "int64"),
]


@pytest.mark.parametrize("loss,input_dtype,target_dtype", MIXED_DTYPES, ids=["-".join(m) for m in MIXED_DTYPES])
def test_mixed_dtypes(loss, input_dtype, target_dtype):
    """Result dtypes follow torch, which promotes in some of these losses and not in others."""
    x = normal(4, 3, rng=rng).astype(input_dtype)
    t = (rng.integers(0, 2, (4, 3)) if "int" in target_dtype else probabilities(4, 3, rng=rng)).astype(target_dtype)
    expected = getattr(torch.nn.functional, loss)(torch.tensor(x), torch.tensor(t), reduction="none")
    with jax.enable_x64(True):
        value = getattr(F, loss)(jnp.asarray(x), jnp.asarray(t), reduction="none")
    assert str(value.dtype) == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(np.asarray(value, np.float64), expected.double().numpy(), rtol=2e-3)


def test_weight_dtypes_do_not_promote_bce():
    """A float64 or integer `weight` leaves BCE and BCE-with-logits in the input's/target's float32, as torch."""
    x, t = probabilities(4, 3, rng=rng).astype(np.float32), probabilities(4, 3, rng=rng).astype(np.float32)
    for weight in (rng.uniform(0, 2, 3), np.array([1, 2, 3])):
        for loss in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
            expected = getattr(torch.nn.functional, loss)(torch.tensor(x), torch.tensor(t), torch.tensor(weight))
            with jax.enable_x64(True):
                value = getattr(F, loss)(jnp.asarray(x), jnp.asarray(t), jnp.asarray(weight))
            assert value.dtype == jnp.float32 and expected.dtype == torch.float32
            np.testing.assert_allclose(value, expected.numpy(), rtol=1e-6)


def test_vmap():
    """vmap over a batch axis equals torch's loss of each batch element."""
    x, t, pos_weight = normal(5, 4, 3, rng=rng), probabilities(5, 4, 3, rng=rng), rng.uniform(0.5, 3, 3)
    expected = [
        torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tensor(x[i]), torch.tensor(t[i]), pos_weight=torch.tensor(pos_weight)
        )
        for i in range(5)
    ]
    expected_mlsm = [
        torch.nn.functional.multilabel_soft_margin_loss(torch.tensor(x[i]), torch.tensor(t[i])) for i in range(5)
    ]
    with jax.enable_x64(True):
        value = jax.vmap(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=jnp.asarray(pos_weight)))(
            jnp.asarray(x), jnp.asarray(t)
        )
        grads = jax.vmap(jax.grad(F.binary_cross_entropy, argnums=(0, 1)))(jnp.asarray(t), jnp.asarray(t[::-1]))
        mlsm = jax.vmap(F.multilabel_soft_margin_loss)(jnp.asarray(x), jnp.asarray(t))
    np.testing.assert_allclose(value, torch.stack(expected).numpy(), rtol=1e-12)
    np.testing.assert_allclose(mlsm, torch.stack(expected_mlsm).numpy(), rtol=1e-12)
    for i in range(5):
        ti, si = torch.tensor(t[i], requires_grad=True), torch.tensor(t[::-1][i], requires_grad=True)
        torch_grads = torch.autograd.grad(torch.nn.functional.binary_cross_entropy(ti, si), (ti, si))
        for ours, theirs in zip(grads, torch_grads, strict=True):
            np.testing.assert_allclose(ours[i], theirs.numpy(), rtol=1e-12)


def test_sigmoid_then_bce_like_torch():
    """torch's BCELoss example, ``loss(sigmoid(x), t)``, differentiated through the sigmoid."""
    x, t = normal(3, rng=rng), labels(3, rng=rng)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(tx), torch.tensor(t))
    (expected_grad,) = torch.autograd.grad(expected, tx)
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(lambda x: F.binary_cross_entropy(jax.nn.sigmoid(x), jnp.asarray(t)))(
            jnp.asarray(x)
        )
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad.numpy(), rtol=1e-10)


def test_optax_equivalents():
    """As the docstrings say: BCE-with-logits' 'none' is optax's sigmoid_binary_cross_entropy, and unweighted
    multilabel_soft_margin_loss is its mean over the classes."""
    optax = pytest.importorskip("optax")
    x, t = jnp.asarray(normal(4, 3, rng=rng), jnp.float32), jnp.asarray(probabilities(4, 3, rng=rng), jnp.float32)
    elementwise = optax.sigmoid_binary_cross_entropy(x, t)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(x, t, reduction="none"), elementwise, rtol=1e-6)
    np.testing.assert_allclose(F.multilabel_soft_margin_loss(x, t, reduction="none"), elementwise.mean(-1), rtol=1e-6)


# --- bad input ----------------------------------------------------------------------------------------------------

X = jnp.full((4, 3), 0.5)


@pytest.mark.parametrize(
    "loss",
    [
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "soft_margin_loss",
        "multilabel_soft_margin_loss",
    ],
)
def test_bad_options_and_dtypes(loss):
    fn = getattr(F, loss)
    check_raises(lambda: fn(X, X, reduction="batchmean"), ValueError, f"^{loss}: `reduction` must be one of")
    check_raises(lambda: fn(X.astype(jnp.int32), X), TypeError, f"^{loss}: `input` must be a floating-point")
    check_raises(lambda: fn(X.astype(jnp.bool_), X), TypeError, f"^{loss}: `input` must be a floating-point")


def test_bad_binary_cross_entropy():
    fn, name = F.binary_cross_entropy, "binary_cross_entropy"
    check_raises(lambda: fn(X, X[0]), ValueError, f"^{name}: `target` must have the same shape as `input`")
    check_raises(lambda: fn(X, X[None]), ValueError, "`target` must have the same shape")
    # torch checks that the dtypes match instead of promoting.
    check_raises(lambda: fn(X, X.astype(jnp.float16)), TypeError, "`target` must have the dtype of `input`")
    check_raises(lambda: fn(X, X.astype(jnp.int32)), TypeError, "`target` must have the dtype of `input`")
    check_raises(lambda: fn(X, X, jnp.ones(4)), ValueError, "`weight` must broadcast to the shape")
    check_raises(lambda: fn(X, X, jnp.ones((1, 4, 3))), ValueError, "`weight` must broadcast .* without enlarging")
    check_raises(lambda: fn(X, X, jnp.ones(3, jnp.complex64)), TypeError, "`weight` must be a floating-point")


def test_bad_binary_cross_entropy_with_logits():
    fn, name = F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits"
    check_raises(lambda: fn(X, X[0]), ValueError, f"^{name}: `target` must have the same shape as `input`")
    check_raises(lambda: fn(X, X.astype(jnp.int32)), TypeError, "`target` must be a floating-point")
    check_raises(lambda: fn(X, X, pos_weight=jnp.ones(4)), ValueError, "`pos_weight` must broadcast to the shape")
    check_raises(lambda: fn(X[0], X[0], pos_weight=jnp.ones((1, 3))), ValueError, "`pos_weight` must broadcast")
    check_raises(lambda: fn(X, X, weight=jnp.ones((2, 1, 1))), ValueError, "`weight` must broadcast .* enlarging")
    check_raises(lambda: fn(X[0, 0], X[0, 0], weight=jnp.ones(1)), ValueError, "`weight` must broadcast")
    check_raises(lambda: fn(X, X, pos_weight=jnp.ones(3, jnp.bool_)), TypeError, "`pos_weight` must be a floating")


def test_bad_soft_margin_loss():
    fn, name = F.soft_margin_loss, "soft_margin_loss"
    check_raises(lambda: fn(X, jnp.ones(4)), ValueError, f"^{name}: `target` must broadcast to the shape")
    check_raises(lambda: fn(X, jnp.ones((1, 4, 3))), ValueError, "`target` must broadcast .* enlarging")
    check_raises(lambda: fn(X[:, :1], X), ValueError, "`target` must broadcast")
    check_raises(lambda: fn(X, X.astype(jnp.complex64)), TypeError, "`target` must be a floating-point")


def test_bad_multilabel_soft_margin_loss():
    fn, name = F.multilabel_soft_margin_loss, "multilabel_soft_margin_loss"
    check_raises(lambda: fn(X[0, 0], X[0, 0]), ValueError, f"^{name}: `input` must have at least one axis")
    check_raises(lambda: fn(X, jnp.ones(4)), ValueError, f"^{name}: shapes do not broadcast")
    check_raises(lambda: fn(X, X, jnp.ones(4)), ValueError, "shapes do not broadcast")
    check_raises(lambda: fn(X, X.astype(jnp.bool_)), TypeError, "`target` must be a floating-point")


@pytest.mark.parametrize(
    "bad",
    [
        dict(input=1.5),
        dict(input=-0.1),
        dict(input=np.nan),
        dict(target=1.5),
        dict(target=-1e-9),
        dict(target=np.nan),
    ],
    ids=lambda bad: "-".join(f"{k}={v}" for k, v in bad.items()),
)
def test_bce_value_checks(bad):
    """Out-of-range input or target: torch raises; so do eager calls (and eager grad); under jit/vmap: NaN."""
    ((name, value),) = bad.items()
    arrays = dict(input=np.full((4, 3), 0.25), target=np.full((4, 3), 0.75))
    arrays[name][1, 2] = value
    tensors = {k: torch.tensor(v) for k, v in arrays.items()}
    with pytest.raises(RuntimeError, match=f"all elements of {name} should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(**tensors)
    x, t = jnp.asarray(arrays["input"], jnp.float32), jnp.asarray(arrays["target"], jnp.float32)
    message = f"^binary_cross_entropy: all elements of `{name}` must lie in \\[0, 1\\]"
    with pytest.raises(ValueError, match=message):
        F.binary_cross_entropy(x, t)
    with pytest.raises(ValueError, match=message):
        jax.grad(F.binary_cross_entropy)(x, t)
    elements = jax.jit(F.binary_cross_entropy, static_argnames="reduction")(x, t, reduction="none")
    assert np.isnan(elements[1, 2]) and np.isfinite(np.delete(np.asarray(elements).ravel(), 5)).all()
    assert np.isnan(jax.jit(F.binary_cross_entropy)(x, t))
    assert np.isnan(jax.vmap(F.binary_cross_entropy)(x, t)[1])
