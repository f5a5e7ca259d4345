"""Parity of l1_loss, mse_loss, smooth_l1_loss and huber_loss with torch, values and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from parity import check_raises, grid, runs

import jaxloss.functional as F
from jaxloss.parity._regression import CASES, normal

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_broadcast_target_warns_like_torch(loss):
    arrays = dict(input=normal(4, 3, rng=rng), target=normal(3, rng=rng))
    (case,) = grid(loss, {"broadcast": dict(arrays=arrays, grad=("input", "target"))}, ("none",))
    with pytest.warns(UserWarning, match="target size"):
        case.check("float32", "eager")


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_bad_input(loss):
    fn = getattr(F, loss)
    x = jnp.ones((4, 3))
    check_raises(lambda: fn(x, x, reduction="avg"), ValueError, "`reduction` must be one of")
    check_raises(lambda: fn(x, jnp.ones((4, 2))), ValueError, "do not broadcast")
    check_raises(lambda: fn(x.astype(jnp.complex64), x), TypeError, "`input` must be a floating-point array")


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_integer_operands_raise_where_torch_has_no_kernel(loss):
    """Two integer operands: torch raises (NotImplementedError, or l1_loss's integer sum and failed mean)."""
    ints = torch.ones(4, 3, dtype=torch.int64)
    with pytest.raises((NotImplementedError, RuntimeError)):
        getattr(torch.nn.functional, loss)(ints, ints)
    x = jnp.ones((4, 3), jnp.int32)
    message = "`input` must be a floating" if loss == "huber_loss" else "`input` or `target` must be a floating"
    check_raises(lambda: getattr(F, loss)(x, x), TypeError, message)


def test_operands_that_torch_refuses():
    """torch refuses to subtract booleans (l1_loss, weighted mse_loss) and to write huber_loss's result into an
    integer `input`; these stay TypeErrors naming the argument."""
    x, mask, ints = normal(4, 3, rng=rng), rng.uniform(size=(4, 3)) < 0.5, rng.integers(0, 3, (4, 3))
    t = torch.nn.functional
    for call in (
        lambda: t.l1_loss(torch.tensor(x), torch.tensor(mask)),
        lambda: t.mse_loss(torch.tensor(x), torch.tensor(mask), weight=torch.tensor(x)),
        lambda: t.huber_loss(torch.tensor(ints), torch.tensor(x)),
    ):
        with pytest.raises(RuntimeError):
            call()
    x, mask, ints = jnp.asarray(x, jnp.float32), jnp.asarray(mask), jnp.asarray(ints)
    check_raises(lambda: F.l1_loss(x, mask), TypeError, "l1_loss: `target` must be a floating-point array")
    check_raises(lambda: F.mse_loss(x, mask, weight=x), TypeError, "mse_loss: `target` must be a floating-point")
    check_raises(lambda: F.huber_loss(ints, x), TypeError, "huber_loss: `input` must be a floating-point array")


HUBER_DTYPES = [
    ("float32", "float64", None),
    ("float64", "float32", None),
    ("float16", "float32", None),
    ("bfloat16", "float32", None),
    ("float32", "float16", "float16"),
    ("float16", "float32", "float32"),
    ("float32", "float64", "float32"),
    ("float32", "int64", None),
    ("float16", "int64", None),
    ("float32", "bool", None),
    ("float32", "float64", "float64"),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("input_dtype, target_dtype, weight_dtype", HUBER_DTYPES)
def test_huber_mixed_dtypes_like_torch(input_dtype, target_dtype, weight_dtype, reduction):
    """torch's huber kernel computes in the promoted dtype of `input` and `target` but writes `input`'s dtype,
    which the weight then promotes: float32 input and float64 target give float32 (l1/mse/smooth_l1: float64).
    torch's backward fails for mixed dtypes (and integer targets); the gradient here is the one torch gives with
    the operands promoted beforehand."""
    local = np.random.default_rng(1)
    values = dict(
        input=local.uniform(-3, 3, (4, 3)),
        target=0.75 * local.integers(-4, 5, (4, 3)),
        weight=local.uniform(0, 2, (4, 3)),
    )
    dtypes = {
        name: dtype for name, dtype in zip(values, (input_dtype, target_dtype, weight_dtype), strict=True) if dtype
    }
    with jax.enable_x64(True):
        arrays = {name: jnp.asarray(values[name]).astype(dtype) for name, dtype in dtypes.items()}
        tensors = {
            name: torch.tensor(np.asarray(a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a)).to(
                getattr(torch, dtypes[name])
            )
            for name, a in arrays.items()
        }
        expected = torch.nn.functional.huber_loss(**tensors, reduction=reduction, delta=1.5)
        common = functools.reduce(torch.promote_types, (t.dtype for t in tensors.values()))
        promoted = {name: t.to(common).requires_grad_(name == "input") for name, t in tensors.items()}
        torch.nn.functional.huber_loss(**promoted, reduction=reduction, delta=1.5).sum().backward()

        def loss(x):
            return F.huber_loss(x, arrays["target"], reduction=reduction, delta=1.5, weight=arrays.get("weight"))

        value, vjp = jax.vjp(loss, arrays["input"])
        (grad,) = vjp(jnp.ones_like(value))
    assert str(value.dtype) == str(expected.dtype).removeprefix("torch.")
    assert grad.dtype == arrays["input"].dtype
    # torch computes 16-bit inputs in their own precision, jaxloss in float32.
    tolerance = dict(rtol=1e-2, atol=1e-2) if "16" in "".join(dtypes.values()) else dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(value, np.float64), expected.double().numpy(), **tolerance)
    np.testing.assert_allclose(np.asarray(grad, np.float64), promoted["input"].grad.double().numpy(), **tolerance)


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


# β and δ are data: differentiable (checked here against finite differences, away from the kinks), traced under
# `jit` (β = 0 included), and NaN rather than an error when a traced value is out of range. (One compilation per
# loss, `vmap` and the `nn` classes: tests/test_float_options.py.)

# check_grads in float64 and op by op, as in tests/test_custom_derivatives.py (which explains the tolerances).
GRAD_TOLERANCE = dict(atol=1e-8, rtol=1e-6, eps=1e-6)
OPTIONS = {"smooth_l1_loss": "beta", "huber_loss": "delta"}


def option_point():
    """Differences d = input - target with |d| in [0.1, 0.4] or [0.6, 2]: at least 0.1 from both kinks, d = 0
    and |d| = 0.5 (the option's value below), in both branches."""
    local = np.random.default_rng(3)
    target = local.standard_normal((4, 3))
    magnitude = np.where(
        local.uniform(size=(4, 3)) < 0.5, local.uniform(0.1, 0.4, (4, 3)), local.uniform(0.6, 2, (4, 3))
    )
    return target + local.choice([-1.0, 1.0], (4, 3)) * magnitude, target


@pytest.mark.parametrize("loss, weighted", [("smooth_l1_loss", False), ("huber_loss", False), ("huber_loss", True)])
def test_option_derivatives(loss, weighted):
    """Orders 1 and 2, forward and reverse, in the option alone and in `input` and the option together."""
    input, target = option_point()
    extra = dict(weight=np.random.default_rng(4).uniform(0.5, 2, (4, 3))) if weighted else {}

    def of(x, value):
        return getattr(F, loss)(x, target, reduction="none", **{OPTIONS[loss]: value}, **extra)

    with jax.enable_x64(True), jax.disable_jit():
        option = jnp.float64(0.5)
        check_grads(lambda value: of(input, value), (option,), order=2, modes=("fwd", "rev"), **GRAD_TOLERANCE)
        check_grads(of, (input, option), order=2, modes=("fwd", "rev"), **GRAD_TOLERANCE)
        # The closed forms: -0.5 min(1, d² / β²) for smooth_l1, w (|d| - δ) outside the band for huber.
        d = np.abs(input - target)
        expected = -0.5 * np.minimum(1, (d / 0.5) ** 2) if loss == "smooth_l1_loss" else np.maximum(d - 0.5, 0)
        np.testing.assert_allclose(
            jax.jacfwd(lambda value: of(input, value))(option), expected * extra.get("weight", 1)
        )


def test_beta_zero_traced_is_l1():
    """β = 0 traced under `jit`: l1_loss's values and torch's gradient (0 at d = 0 and at NaN), with no NaN from
    the unused Huber branch; the derivative in β is the one-sided -0.5 (0 where d = 0, where the loss is 0 for
    every β)."""
    input = np.array([0.0, 1.0, -2.0, 0.25, np.inf, -np.inf, np.nan], np.float32)
    target = np.zeros_like(input)
    x = torch.tensor(input, requires_grad=True)
    torch_loss = torch.nn.functional.smooth_l1_loss(x, torch.tensor(target), reduction="none", beta=0.0)
    torch_loss.backward(torch.ones_like(torch_loss))

    @jax.jit
    def loss_and_grads(x, beta):
        value, vjp = jax.vjp(lambda x, beta: F.smooth_l1_loss(x, target, reduction="none", beta=beta), x, beta)
        return value, *vjp(jnp.ones_like(value))

    value, d_input, d_beta = loss_and_grads(jnp.asarray(input), jnp.float32(0.0))
    np.testing.assert_array_equal(value, F.l1_loss(input, target, reduction="none"))
    np.testing.assert_array_equal(value, torch_loss.detach().numpy())
    np.testing.assert_array_equal(d_input, x.grad.numpy())
    assert d_beta == -0.5 * 6  # the six non-zero differences (NaN included)
    with jax.enable_x64(True):  # against a one-sided difference, the finite elements

        def smooth_l1(beta):
            return F.smooth_l1_loss(input[:4].astype(np.float64), target[:4], reduction="none", beta=beta)

        step = 1e-6
        np.testing.assert_allclose(
            jax.jacfwd(smooth_l1)(jnp.float64(0.0)), (smooth_l1(step) - smooth_l1(0.0)) / step, atol=1e-5
        )


@pytest.mark.parametrize("shape", [(4, 3), (0, 3)], ids=["2d", "empty"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "loss, value, message",
    [
        ("smooth_l1_loss", -1.0, "`beta` must be non-negative"),
        ("smooth_l1_loss", np.nan, "`beta` must be non-negative"),
        ("huber_loss", 0.0, "`delta` must be positive"),
        ("huber_loss", -1.0, "`delta` must be positive"),
        ("huber_loss", np.nan, "`delta` must be positive"),
    ],
)
def test_invalid_option(loss, value, message, reduction, shape):
    """Traced under `jit`, an out-of-range β or δ gives a NaN loss and NaN gradients (a value check); known (a
    Python number or JAX scalar, also under eager `jax.grad`), it raises a ValueError naming it, as torch does."""
    local = np.random.default_rng(5)
    input, target = jnp.asarray(local.standard_normal(shape), jnp.float32), local.standard_normal(shape)

    def of(x, option):
        return getattr(F, loss)(x, target, reduction=reduction, **{OPTIONS[loss]: option})

    option = jnp.float32(value)
    assert np.all(np.isnan(jax.jit(of)(input, option)))
    d_input, d_option = jax.jit(jax.grad(lambda x, option: jnp.sum(of(x, option)), argnums=(0, 1)))(input, option)
    assert np.all(np.isnan(d_input))
    assert np.isnan(d_option) or (reduction == "none" and not input.size)  # no loss, nothing to differentiate
    for call in (lambda: of(input, value), lambda: of(input, option), lambda: jax.grad(of, 1)(input, option)):
        with pytest.raises(ValueError, match=f"{loss}: {message}"):
            call()
