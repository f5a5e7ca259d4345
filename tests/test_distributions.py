"""Parity of kl_div, poisson_nll_loss and gaussian_nll_loss with torch, values and gradients."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from jax.test_util import check_grads
from parity import MODES, check_raises, runs

import jaxloss.functional as F
from jaxloss.parity._distributions import CASES


def warns_like_torch(case):
    """kl_div's reduction='mean' warns (in torch and in jaxloss); nothing else here does."""
    if case.loss == "kl_div" and case.options["reduction"] == "mean":
        return pytest.warns(UserWarning, match="batchmean")
    return contextlib.nullcontext()


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    with warns_like_torch(case):
        case.check(dtype, mode)


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize(
    "input_dtype, target_dtype",
    [
        ("int64", "int64"),
        ("int32", "int64"),
        ("int64", "float16"),
        ("float16", "int64"),
        ("int64", "float64"),
        ("float64", "int64"),
        ("int64", "bfloat16"),
    ],
)
def test_poisson_integer_operands_promote_like_torch(input_dtype, target_dtype, log_input):
    """torch takes exp/log of an integer operand in float32: two integers give float32, and so does an
    integer input with a 16-bit target (an integer target takes the input's dtype)."""
    # (rates from 1: at x = 0 a float16 torch rounds eps = 1e-8 to 0, where jaxloss computes in float32)
    local = np.random.default_rng(1)
    x, t = local.integers(1, 5, (4, 3)), local.integers(0, 5, (4, 3)).astype(np.float64)
    torch_dtypes = {
        "int32": torch.int32,
        "int64": torch.int64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float64": torch.float64,
    }
    expected = torch.nn.functional.poisson_nll_loss(
        torch.tensor(x).to(torch_dtypes[input_dtype]),
        torch.tensor(t).to(torch_dtypes[target_dtype]),
        log_input=log_input,
        full=True,
        reduction="none",
    )
    with jax.enable_x64(True):
        value = F.poisson_nll_loss(
            jnp.asarray(x).astype(input_dtype),
            jnp.asarray(t).astype(target_dtype),
            log_input=log_input,
            full=True,
            reduction="none",
        )
        assert str(value.dtype) == str(expected.dtype).removeprefix("torch.")
        np.testing.assert_allclose(np.asarray(value, np.float64), expected.double().numpy(), rtol=2e-2, atol=2e-2)


def test_kl_div_mean_warns_on_every_call():
    x, t = jnp.log(jnp.full((2, 3), 1 / 3)), jnp.full((2, 3), 1 / 3)
    for call in (lambda: F.kl_div(x, t), lambda: jax.jit(lambda x, t: F.kl_div(x, t))(x, t)):
        for _ in range(2):
            with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
                call()


def test_kl_div_none_summed_is_optax_kl_divergence():
    """The docstring's claim: optax takes the same arguments and sums over the last axis."""
    local = np.random.default_rng(2)
    x, t = jnp.log(jnp.asarray(local.uniform(0.05, 1, (4, 3)))), jnp.asarray(local.uniform(0, 1, (4, 3)))
    np.testing.assert_allclose(F.kl_div(x, t, reduction="none").sum(-1), optax.kl_divergence(x, t), rtol=1e-6)


def test_vmap():
    """Per-example losses under vmap (reduction='sum' per example) equal torch's unreduced losses summed over
    each example; the gradient through vmap equals torch's too."""
    local = np.random.default_rng(3)
    x, t, v = local.standard_normal((5, 4, 3)), local.standard_normal((5, 4, 3)), local.uniform(0.1, 2, (5, 4))
    tx, tt, tv = (torch.tensor(a, requires_grad=True) for a in (x, t, v))
    expected = torch.nn.functional.gaussian_nll_loss(tx, tt, tv.unsqueeze(-1), reduction="none").sum((1, 2))
    expected_grads = torch.autograd.grad(expected.sum(), (tx, tt, tv))
    with jax.enable_x64(True):
        per_example = jax.vmap(lambda x, t, v: F.gaussian_nll_loss(x, t, v, reduction="sum"))
        grads = jax.grad(lambda *a: per_example(*a).sum(), argnums=(0, 1, 2))(x, t, v)
        np.testing.assert_allclose(per_example(x, t, v), expected.detach().numpy(), rtol=1e-12)
        for g, e in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(g, e.numpy(), rtol=1e-12)

        kl = jax.vmap(lambda x, t: F.kl_div(x, t, reduction="batchmean"))(x, jnp.abs(t))
        torch_kl = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(np.abs(t)), reduction="none")
        np.testing.assert_allclose(kl, torch_kl.sum((1, 2)).numpy() / 4, rtol=1e-12)

        poisson = jax.vmap(lambda x, t: F.poisson_nll_loss(x, t, full=True, reduction="sum"))(x, jnp.abs(t))
        torch_poisson = torch.nn.functional.poisson_nll_loss(
            torch.tensor(x), torch.tensor(np.abs(t)), full=True, reduction="none"
        )
        np.testing.assert_allclose(poisson, torch_poisson.sum((1, 2)).numpy(), rtol=1e-12)


def test_bad_input_kl_div():
    x = jnp.ones((4, 3))
    check_raises(lambda: F.kl_div(x, x, reduction="avg"), ValueError, "kl_div: `reduction` must be one of")
    check_raises(lambda: F.kl_div(x.astype(jnp.int32), x, reduction="sum"), TypeError, "`input` must be a floating")
    check_raises(lambda: F.kl_div(x, x.astype(jnp.int32), reduction="sum"), TypeError, "`target` must be a floating")
    check_raises(lambda: F.kl_div(x, jnp.ones(4), reduction="sum"), ValueError, "kl_div: shapes do not broadcast")


def test_bad_input_poisson_nll_loss():
    x = jnp.ones((4, 3))
    check_raises(lambda: F.poisson_nll_loss(x, x, reduction="batchmean"), ValueError, "`reduction` must be one of")
    check_raises(lambda: F.poisson_nll_loss(x.astype(jnp.complex64), x), TypeError, "`input` must be a floating")
    check_raises(lambda: F.poisson_nll_loss(x, jnp.ones(4)), ValueError, "poisson_nll_loss: shapes do not broadcast")
    check_raises(lambda: F.poisson_nll_loss(x, x, eps=None), TypeError, "`eps` must be a real number")
    # torch's Stirling term subtracts the target: a boolean one fails there.
    check_raises(lambda: F.poisson_nll_loss(x, x > 0, full=True), TypeError, "`target` must be a floating")


def test_bad_input_gaussian_nll_loss():
    x = jnp.ones((4, 3))
    for var in (jnp.ones(3), jnp.ones((1, 1)), jnp.ones(()), jnp.ones((4, 3, 1)), jnp.ones((4, 2))):
        check_raises(lambda: F.gaussian_nll_loss(x, x, var), ValueError, r"`var` is of incorrect size")
    check_raises(lambda: F.gaussian_nll_loss(x, x, x, reduction="batchmean"), ValueError, "`reduction` must be one of")
    # torch refuses to subtract booleans and to clamp an integer `var` in place.
    check_raises(lambda: F.gaussian_nll_loss(x > 0, x, x), TypeError, "`input` must be a floating")
    check_raises(lambda: F.gaussian_nll_loss(x, x > 0, 1.0), TypeError, "`target` must be a floating")
    check_raises(lambda: F.gaussian_nll_loss(x, x, x.astype(jnp.int32)), TypeError, "`var` must be a floating")
    check_raises(lambda: F.gaussian_nll_loss(x, jnp.ones(4), x), ValueError, "shapes do not broadcast")
    # A negative Python float is known statically: it raises in every mode, as torch's ValueError.
    check_raises(lambda: F.gaussian_nll_loss(x, x, -1.0), ValueError, "`var` must be non-negative")


@pytest.mark.parametrize("mode", MODES)
def test_gaussian_python_float_var_with_integer_input(mode):
    """torch expands a float `var` as ``var * ones_like(input)``: float32 (its default) for an integer input."""
    x, t = np.array([[0, 1, 2], [3, 1, 0]]), np.array([[0.5, 1.0, 2.5], [2.0, 0.0, 1.0]], np.float32)
    expected = torch.nn.functional.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), 0.3)
    loss = F.gaussian_nll_loss if mode == "eager" else jax.jit(F.gaussian_nll_loss, static_argnums=2)
    value = loss(jnp.asarray(x, jnp.int32), jnp.asarray(t), 0.3)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, expected.numpy(), rtol=2e-6)


def test_gaussian_python_int_var_raises_type_error_like_torch():
    with pytest.raises(TypeError):
        torch.nn.functional.gaussian_nll_loss(torch.ones(4, 3), torch.ones(4, 3), 1)
    check_raises(lambda: F.gaussian_nll_loss(jnp.ones((4, 3)), jnp.ones((4, 3)), 1), TypeError, "`var`")


def test_gaussian_negative_var_raises_eagerly_and_is_nan_under_jit():
    x, var = jnp.zeros((4, 3)), jnp.ones((4, 1)).at[2].set(-0.5)
    with pytest.raises(ValueError, match="negative entry"):
        torch.nn.functional.gaussian_nll_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.tensor(np.asarray(var)))
    with pytest.raises(ValueError, match="gaussian_nll_loss: `var` must be non-negative"):
        F.gaussian_nll_loss(x, x, var)
    with pytest.raises(ValueError, match="`var` must be non-negative"):
        jax.grad(lambda v: F.gaussian_nll_loss(x, x, v))(var)
    elements = jax.jit(lambda v: F.gaussian_nll_loss(x, x, v, reduction="none"))(var)
    np.testing.assert_array_equal(np.isnan(elements), np.broadcast_to(np.asarray(var) < 0, (4, 3)))
    assert np.isnan(jax.jit(lambda v: F.gaussian_nll_loss(x, x, v))(var))
    per_example = jax.vmap(lambda v: F.gaussian_nll_loss(x, x, v, reduction="sum"))(jnp.stack([jnp.ones((4, 1)), var]))
    assert np.isnan(per_example).tolist() == [False, True]


# ---------------------------------------------------------------------------------------------------------------
# `eps` is data: derivatives with respect to it, against finite differences (float64, `check_grads`) and in
# closed form. (jit, vmap, torch parity and the single compilation of every float option: test_float_options.py.)

# Central differences with a step of 1e-6 err by ~1e-10 relative for these O(1) losses, far under rtol.
GRAD_TOLERANCE = dict(atol=1e-8, rtol=1e-6, eps=1e-6)


def check_grads64(fn, *args, order=2):
    """`check_grads` of `fn` at `args` (as float64 arrays), orders up to `order`, forward and reverse; op by op,
    which compiles each primitive once for all the checks (under jit, every check compiles programs of its own)."""
    with jax.enable_x64(True), jax.disable_jit():
        args = tuple(jnp.asarray(a, jnp.float64) for a in args)
        check_grads(fn, args, order=order, modes=("fwd", "rev"), **GRAD_TOLERANCE)


# The reduction is a plain sum or mean after the element losses: each once, 'none' with forward mode comparing
# every element's tangent.
@pytest.mark.parametrize("full, reduction", [(False, "none"), (True, "mean"), (False, "sum")])
def test_poisson_eps_derivatives(full, reduction):
    """d/d eps of ``x - t log(x + eps)`` is ``-t / (x + eps)``; the loss is smooth in eps (rates > 0)."""
    local = np.random.default_rng(10)
    x, t = local.uniform(0.2, 2, (4, 3)), local.uniform(0, 4, (4, 3))  # t both sides of the Stirling switch at 1

    def loss(input, eps):
        return F.poisson_nll_loss(input, t, log_input=False, full=full, eps=eps, reduction=reduction)

    check_grads64(lambda eps: loss(x, eps), 0.3)
    check_grads64(loss, x, 0.3)
    with jax.enable_x64(True):
        grad = jax.grad(lambda eps: loss(x, eps).sum())(jnp.float64(0.3))
        expected = np.sum(-t / (x + 0.3)) / (t.size if reduction == "mean" else 1)
        np.testing.assert_allclose(grad, expected, rtol=1e-12)
        # log_input=True does not use eps: its derivative is exactly 0.
        unused = jax.grad(lambda eps: F.poisson_nll_loss(x, t, eps=eps, reduction=reduction).sum())(jnp.float64(0.3))
        assert unused == 0


# var entries at least 0.15 from eps = 0.3 on either side: 5 of 12 clamped, where the loss is smooth in eps.
GNLL_EPS = 0.3
GNLL_VAR = np.array([[0.05, 0.6, 1.2], [0.15, 0.0, 0.9], [2.0, 0.1, 0.45], [0.7, 1.5, 0.12]])
GNLL_CLAMPED = GNLL_VAR < GNLL_EPS


@pytest.mark.parametrize("full, reduction", [(False, "none"), (True, "mean"), (False, "sum")])
def test_gaussian_eps_derivatives(full, reduction):
    """Where var < eps the loss is ``(log eps + r²/eps) / 2``: d/d eps is ``(1/eps - r²/eps²) / 2`` there, 0 where
    var >= eps; the var gradient stays straight-through (the loss's derivative at eps, also where clamped)."""
    local = np.random.default_rng(11)
    x, t = local.standard_normal((4, 3)), local.standard_normal((4, 3))
    assert 0 < GNLL_CLAMPED.sum() < GNLL_CLAMPED.size and np.abs(GNLL_VAR - GNLL_EPS).min() >= 0.15

    def loss(input, target, eps):
        return F.gaussian_nll_loss(input, target, GNLL_VAR, full=full, eps=eps, reduction=reduction)

    check_grads64(lambda eps: loss(x, t, eps), GNLL_EPS)
    check_grads64(loss, x, t, GNLL_EPS)
    with jax.enable_x64(True):
        grad_eps = jax.grad(lambda eps: loss(x, t, eps).sum())(jnp.float64(GNLL_EPS))
        scale = x.size if reduction == "mean" else 1
        d_clamped = 0.5 * (1 / GNLL_EPS - (x - t) ** 2 / GNLL_EPS**2)
        np.testing.assert_allclose(grad_eps, np.sum(np.where(GNLL_CLAMPED, d_clamped, 0)) / scale, rtol=1e-12)
        # Nothing clamped: the derivative is exactly 0.
        unclamped = jax.grad(lambda eps: F.gaussian_nll_loss(x, t, GNLL_VAR + 0.1, eps=eps, reduction=reduction).sum())
        assert unclamped(jnp.float64(0.05)) == 0
        # Differentiating eps too leaves the var gradient torch's straight-through one.
        grad_var, _ = jax.grad(
            lambda v, eps: F.gaussian_nll_loss(x, t, v, full=full, eps=eps, reduction=reduction).sum(), argnums=(0, 1)
        )(jnp.asarray(GNLL_VAR), jnp.float64(GNLL_EPS))
        clamped_var = np.maximum(GNLL_VAR, GNLL_EPS)
        expected_var = 0.5 * (1 / clamped_var - (x - t) ** 2 / clamped_var**2) / scale
        np.testing.assert_allclose(grad_var, expected_var, rtol=1e-12)


def test_gaussian_eps_derivative_nan_with_negative_var_under_jit():
    """Like every operand's, the eps derivative is NaN when the value check fails under jit."""
    x, var = jnp.zeros((4, 3)), jnp.ones((4, 1)).at[2].set(-0.5)
    grad = jax.jit(jax.grad(lambda eps: F.gaussian_nll_loss(x, x, var, eps=eps)))(jnp.float32(2.0))
    assert np.isnan(grad)
    grad = jax.jit(jax.grad(lambda eps: F.gaussian_nll_loss(x, x, jnp.ones((4, 1)), eps=eps)))(jnp.float32(2.0))
    assert grad == 0.5 * (1 / 2.0)
