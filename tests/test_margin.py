"""Parity of multilabel_margin_loss, multi_margin_loss, margin_ranking_loss and hinge_embedding_loss with torch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from jax.test_util import check_grads
from parity import check_raises, runs

import jaxloss.functional as F
from jaxloss.parity._margin import CASES, MLM_TARGET, MM_2D, MM_WEIGHT

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


@pytest.mark.parametrize(
    "loss, input, target",
    [
        ("multilabel_margin_loss", np.zeros((0, 4)), np.zeros((0, 4), int)),
        ("multi_margin_loss", np.zeros((0, 4)), np.zeros(0, int)),
    ],
)
def test_empty_batch_reductions(loss, input, target):
    """torch 2.13 returns uninitialised memory here; jaxloss follows the rule of every other loss (and of
    torch's own empty reductions): 'mean' is NaN, 'sum' 0, and the gradient is empty."""
    fn = getattr(F, loss)
    assert np.isnan(fn(jnp.asarray(input), jnp.asarray(target)))
    assert fn(jnp.asarray(input), jnp.asarray(target), reduction="sum") == 0
    assert torch.nn.functional.mse_loss(torch.zeros(0), torch.zeros(0)).isnan()  # torch's rule, for the record
    grad = jax.grad(lambda x: fn(x, jnp.asarray(target), reduction="sum"))(jnp.asarray(input, jnp.float32))
    assert grad.shape == input.shape


def test_multi_margin_weight_gradient():
    """torch refuses to differentiate `weight`; jaxloss gives the plain derivative: d mean / d w[k] is the sum of
    the unweighted losses of the samples of class k, over N."""
    x, y = MM_2D["input"], MM_2D["target"]
    for p in (1, 2):
        unweighted = torch.nn.functional.multi_margin_loss(torch.tensor(x), torch.tensor(y), p=p, reduction="none")
        expected = np.bincount(y, weights=unweighted.numpy(), minlength=5) / len(y)
        with jax.enable_x64(True):
            grad = jax.grad(lambda w: F.multi_margin_loss(jnp.asarray(x), jnp.asarray(y), p=p, weight=w))(
                jnp.asarray(MM_WEIGHT)
            )
        np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_dtype_promotion():
    """Results in torch's dtype: margin_ranking promotes all three operands, hinge_embedding keeps the input's.
    multi_margin promotes input and weight (torch requires equal dtypes there: a deliberate leniency)."""
    f32, f64 = np.array([1.0, 2.0], np.float32), np.array([3.0, 1.0])
    sign = np.array([1.0, -1.0])
    with jax.enable_x64(True):
        calls = [
            ("margin_ranking_loss", (f32, f64, sign.astype(np.float32)), {}),
            ("margin_ranking_loss", (f32, f32, sign), {}),
            ("margin_ranking_loss", (f32.astype(np.float16), f32.astype(np.float16), np.array([1, -1])), {}),
            ("margin_ranking_loss", (np.array([1, 2]), np.array([3, 1]), np.array([1, -1])), dict(margin=0.5)),
            ("hinge_embedding_loss", (f32, sign), {}),
            ("hinge_embedding_loss", (f64, sign.astype(np.float32)), {}),
            ("hinge_embedding_loss", (f32, np.array([True, False])), {}),
        ]
        for loss, arrays, options in calls:
            expected = getattr(torch.nn.functional, loss)(*map(torch.tensor, arrays), **options, reduction="none")
            value = getattr(F, loss)(*map(jnp.asarray, arrays), **options, reduction="none")
            assert value.dtype == np.dtype(str(expected.dtype).removeprefix("torch.")), (loss, arrays)
            np.testing.assert_allclose(np.asarray(value, np.float64), expected.double().numpy(), rtol=1e-6)
        x = jnp.asarray(MM_2D["input"], jnp.float32)
        value = F.multi_margin_loss(x, jnp.asarray(MM_2D["target"]), weight=jnp.asarray(MM_WEIGHT))
        assert value.dtype == jnp.float64
        expected = torch.nn.functional.multi_margin_loss(
            torch.tensor(np.asarray(x), dtype=torch.float64),
            torch.tensor(MM_2D["target"]),
            weight=torch.tensor(MM_WEIGHT),
        )
        np.testing.assert_allclose(value, expected.numpy(), rtol=1e-12)


def test_margin_ranking_is_optax_hinge_with_zero_input2():
    x, t = jnp.asarray(rng.standard_normal(6), jnp.float32), jnp.asarray(np.sign(rng.standard_normal(6)), jnp.float32)
    value = F.margin_ranking_loss(x, jnp.zeros(6), t, margin=1.0, reduction="none")
    np.testing.assert_allclose(value, optax.losses.hinge_loss(x, t), rtol=1e-6)


def test_vmap():
    """vmap over a leading axis equals the per-item calls, with a value check that cannot fire (NaN instead)."""
    x = jnp.asarray(rng.standard_normal((3, 4, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, (3, 4)))
    y_bad = y.at[1, 2].set(5)
    value = jax.vmap(lambda x, y: F.multi_margin_loss(x, y, p=2))(x, y_bad)
    expected = [F.multi_margin_loss(x[i], y[i], p=2) for i in (0, 2)]
    np.testing.assert_allclose(value[np.array([0, 2])], expected, rtol=1e-6)
    assert np.isnan(value[1])
    grads = jax.vmap(jax.grad(lambda x, y: F.multi_margin_loss(x, y)))(x, y)
    expected = np.stack([jax.grad(F.multi_margin_loss)(x[i], y[i]) for i in range(3)])
    np.testing.assert_allclose(grads, expected, rtol=1e-6)
    targets = jnp.asarray(np.broadcast_to(MLM_TARGET[:4, :5], (3, 4, 5)))
    value = jax.vmap(lambda x, y: F.multilabel_margin_loss(x, y, reduction="none"))(x, targets)
    expected = np.stack([F.multilabel_margin_loss(x[i], targets[i], reduction="none") for i in range(3)])
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    x1, x2, t = (jnp.asarray(rng.standard_normal((3, 4)), jnp.float32) for _ in range(3))
    value = jax.vmap(F.margin_ranking_loss)(x1, x2, t)
    np.testing.assert_allclose(value, [F.margin_ranking_loss(x1[i], x2[i], t[i]) for i in range(3)], rtol=1e-6)
    value = jax.vmap(F.hinge_embedding_loss)(x1, jnp.sign(t))
    np.testing.assert_allclose(value, [F.hinge_embedding_loss(x1[i], jnp.sign(t[i])) for i in range(3)], rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Bad input

X = jnp.ones((2, 4))
MLM_Y = jnp.array([[0, -1, 0, 0], [1, 2, -1, 0]])
MM_Y = jnp.array([0, 3])


@pytest.mark.parametrize("loss", ["multilabel_margin_loss", "multi_margin_loss"])
def test_class_losses_bad_input(loss):
    fn, y = getattr(F, loss), {"multilabel_margin_loss": MLM_Y, "multi_margin_loss": MM_Y}[loss]
    check_raises(lambda: fn(X, y, reduction="batchmean"), ValueError, f"^{loss}: `reduction` must be one of")
    check_raises(lambda: fn(X, y.astype(jnp.float32)), TypeError, f"^{loss}: `target` must be an integer array")
    check_raises(lambda: fn(X, y.astype(bool)), TypeError, f"^{loss}: `target` must be an integer array")
    check_raises(lambda: fn(X.astype(jnp.int32), y), TypeError, f"^{loss}: `input` must be a floating-point")
    for shape in [(2, 2, 4), (3, 0), (0,), (0, 0)]:
        check_raises(lambda: fn(jnp.ones(shape), y), ValueError, f"^{loss}: `input` must be 0-dim, a non-empty")


def test_multilabel_margin_bad_target_shape():
    match = "^multilabel_margin_loss: `target` must hold"
    check_raises(lambda: F.multilabel_margin_loss(X, MLM_Y[:, :3]), ValueError, match)
    check_raises(lambda: F.multilabel_margin_loss(X, MLM_Y.reshape(-1)), ValueError, match)
    check_raises(lambda: F.multilabel_margin_loss(X[0], MLM_Y[:1]), ValueError, match)
    check_raises(lambda: F.multilabel_margin_loss(X[:1], MLM_Y[0]), ValueError, match)
    check_raises(lambda: F.multilabel_margin_loss(X[0, 0], jnp.array([0, 0])), ValueError, match)


def test_multi_margin_bad_options():
    name = "^multi_margin_loss: "
    for p in (0, 3, "1", 1.5):
        check_raises(lambda: F.multi_margin_loss(X, MM_Y, p=p), ValueError, name + "`p` must be 1 or 2")
    check_raises(lambda: F.multi_margin_loss(X, MM_Y, margin=None), TypeError, name + "`margin` must be a real number")
    for weight in (jnp.ones((1, 4)), jnp.ones(()), jnp.ones(3)):
        check_raises(lambda: F.multi_margin_loss(X, MM_Y, weight=weight), ValueError, name + "`weight` must be one-dim")
    check_raises(
        lambda: F.multi_margin_loss(X, MM_Y, weight=jnp.ones(4, int)), TypeError, name + "`weight` must be a floating"
    )
    for target in (MM_Y[:, None], MM_Y[:1], jnp.array([0, 1, 2]), MM_Y[0]):
        check_raises(lambda: F.multi_margin_loss(X, target), ValueError, name + "`target` must hold one class index")
    check_raises(lambda: F.multi_margin_loss(X[0], MM_Y), ValueError, name + "`target` must hold one class index")


def test_torch_also_rejects():
    """The static errors above mirror errors of torch (checked here so that a change in torch shows)."""
    tf = torch.nn.functional
    x = torch.ones(2, 4)
    rejected = [
        lambda: tf.multilabel_margin_loss(x, torch.tensor(np.asarray(MLM_Y))[:, :3]),
        lambda: tf.multilabel_margin_loss(torch.ones(3, 0), torch.zeros(3, 0, dtype=torch.long)),
        lambda: tf.multilabel_margin_loss(x, torch.tensor(np.asarray(MLM_Y)).double()),
        lambda: tf.multi_margin_loss(x, torch.tensor([0, 3]), p=3),
        lambda: tf.multi_margin_loss(x, torch.tensor([0, 3]), weight=torch.ones(3)),
        lambda: tf.multi_margin_loss(x, torch.tensor([[0], [3]])),
        lambda: tf.multi_margin_loss(torch.ones(2, 2, 4), torch.tensor([0, 3])),
        lambda: tf.margin_ranking_loss(torch.ones(4), torch.ones(4), torch.ones(())),
        lambda: tf.margin_ranking_loss(torch.ones(4), torch.ones(3), torch.ones(4)),
        lambda: tf.hinge_embedding_loss(torch.ones(4), torch.ones(3)),
        lambda: tf.hinge_embedding_loss(torch.ones(4, dtype=torch.long), torch.ones(4), reduction="mean"),
    ]
    for call in rejected:
        with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
            call()


@pytest.mark.parametrize(
    "loss, target, bad_rows",
    [
        ("multilabel_margin_loss", MLM_Y.at[1, 0].set(4), [1]),
        ("multilabel_margin_loss", MLM_Y.at[0, 0].set(-2), [0]),
        ("multilabel_margin_loss", MLM_Y.at[0, 3].set(9), [0]),  # after the -1: torch checks it too
        ("multi_margin_loss", MM_Y.at[1].set(4), [1]),
        ("multi_margin_loss", MM_Y.at[0].set(-1), [0]),
    ],
)
def test_target_out_of_range(loss, target, bad_rows):
    """A value check: eager calls (and eager grad) raise; under jit the bad samples' losses are NaN."""
    fn = getattr(F, loss)
    x = jnp.asarray(rng.standard_normal((2, 4)), jnp.float32)
    match = f"^{loss}: `target` must hold class indices in"
    with pytest.raises(ValueError, match=match):
        fn(x, target)
    with pytest.raises(ValueError, match=match):
        jax.grad(fn)(x, target)
    with pytest.raises(RuntimeError, match="out of range"):
        getattr(torch.nn.functional, loss)(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(target)).long())
    per_sample = jax.jit(lambda x, y: fn(x, y, reduction="none"))(x, target)
    assert np.isnan(per_sample[np.asarray(bad_rows)]).all()
    assert np.isfinite(np.delete(per_sample, bad_rows)).all()
    assert np.isnan(jax.jit(fn)(x, target))
    # Unbatched: the value check fires too.
    with pytest.raises(ValueError, match=match):
        fn(x[bad_rows[0]], target[bad_rows[0]])


def test_margin_ranking_bad_input():
    name = "^margin_ranking_loss: "
    x = jnp.ones(4)
    same_ndim = name + "`input1`, `input2` and `target` must have the same number of dimensions"
    check_raises(lambda: F.margin_ranking_loss(x, x, jnp.ones(())), ValueError, same_ndim)
    check_raises(lambda: F.margin_ranking_loss(x, x[None], x), ValueError, same_ndim)
    check_raises(lambda: F.margin_ranking_loss(x, jnp.ones(3), x), ValueError, name + "shapes do not broadcast")
    check_raises(lambda: F.margin_ranking_loss(x, x, x > 0), TypeError, name + "`target` must be a floating-point")
    check_raises(lambda: F.margin_ranking_loss(x, x, x, reduction="avg"), ValueError, name + "`reduction` must be")
    check_raises(lambda: F.margin_ranking_loss(x, x, x, margin=None), TypeError, name + "`margin` must be a real")


def test_hinge_embedding_bad_input():
    name = "^hinge_embedding_loss: "
    x = jnp.ones(4)
    for reduction in ("none", "mean", "sum"):  # torch: int64 for 'none'/'sum'; jaxloss: TypeError for all
        check_raises(
            lambda: F.hinge_embedding_loss(x.astype(jnp.int32), x, reduction=reduction),
            TypeError,
            name + "`input` must be a floating-point",
        )
    check_raises(
        lambda: F.hinge_embedding_loss(x, x.astype(jnp.complex64)), TypeError, name + "`target` must be a boolean"
    )
    check_raises(lambda: F.hinge_embedding_loss(x, jnp.ones(3)), ValueError, name + "shapes do not broadcast")
    check_raises(lambda: F.hinge_embedding_loss(x, x, reduction="batchmean"), ValueError, name + "`reduction` must be")
    check_raises(lambda: F.hinge_embedding_loss(x, x, margin=None), TypeError, name + "`margin` must be a real number")


# ---------------------------------------------------------------------------------------------------------------
# `margin` is data: derivatives with respect to it, against finite differences (float64, `check_grads`) and in
# closed form, at points where every hinge argument is at least 0.1 from its kink (finite differences say
# nothing at a kink; torch's subgradient there is the parity grids' business). (jit, vmap, torch parity and the
# single compilation of every float option: test_float_options.py.)

# Central differences with a step of 1e-6 err by ~1e-10 relative for these O(1) losses, far under rtol.
GRAD_TOLERANCE = dict(atol=1e-8, rtol=1e-6, eps=1e-6)


def check_grads64(fn, *args):
    """`check_grads` of `fn` at `args` (as float64 arrays), orders 1 and 2, forward and reverse; op by op, which
    compiles each primitive once for all the checks (under jit, every check compiles programs of its own)."""
    with jax.enable_x64(True), jax.disable_jit():
        args = tuple(jnp.asarray(a, jnp.float64) for a in args)
        check_grads(fn, args, order=2, modes=("fwd", "rev"), **GRAD_TOLERANCE)


def hinge_arguments(seed, shape):
    """Hinge arguments z of both signs, with |z| in [0.1, 1.5]."""
    local = np.random.default_rng(seed)
    return local.choice([-1.0, 1.0], shape) * local.uniform(0.1, 1.5, shape)


# Scores on a grid of 0.25 with margin 0.625: every margin - x[y] + x[i] is an odd multiple of 0.125.
MM_GRID_MARGIN = 0.625
MM_GRID = dict(input=0.25 * np.random.default_rng(20).integers(-4, 5, (6, 5)), target=rng.integers(0, 5, 6))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multi_margin_margin_derivatives(p, weighted):
    """d mean / d margin is ``Σ_n w[y_n] / (N C) Σ_{i != y_n, z > 0} p z^(p-1)``, z = margin - x[y] + x[i]."""
    x, y = MM_GRID["input"], MM_GRID["target"]
    weight = MM_WEIGHT if weighted else None
    z = MM_GRID_MARGIN - np.take_along_axis(x, y[:, None], axis=-1) + x
    others = np.arange(5) != y[:, None]
    assert np.abs(z[others]).min() >= 0.1 and (z[others] > 0).any() and (z[others] < 0).any()

    def loss(input, margin, reduction="mean"):
        return F.multi_margin_loss(input, y, p=p, margin=margin, weight=weight, reduction=reduction)

    check_grads64(lambda margin: loss(x, margin, "none"), MM_GRID_MARGIN)
    check_grads64(loss, x, MM_GRID_MARGIN)
    with jax.enable_x64(True):
        grad = jax.grad(loss, argnums=1)(jnp.asarray(x), jnp.float64(MM_GRID_MARGIN))
        terms = np.where(others & (z > 0), p * np.maximum(z, 0) ** (p - 1), 0).sum(-1)
        w = np.ones(len(y)) if weight is None else weight[y]
        np.testing.assert_allclose(grad, np.mean(w * terms) / 5, rtol=1e-12)


def test_multi_margin_margin_derivative_nan_with_bad_target_under_jit():
    """Like every operand's, the margin derivative is NaN when the value check fails under jit."""
    x = jnp.asarray(MM_GRID["input"], jnp.float32)

    def grad(target):
        return jax.jit(jax.grad(lambda margin: F.multi_margin_loss(x, target, margin=margin)))(jnp.float32(0.625))

    assert np.isfinite(grad(jnp.asarray(MM_GRID["target"])))
    assert np.isnan(grad(jnp.asarray(MM_GRID["target"]).at[0].set(5)))


def test_margin_ranking_margin_derivatives():
    """d loss / d margin is 1 where -t (x1 - x2) + margin > 0, else 0: for 'mean', the active fraction."""
    local = np.random.default_rng(21)
    z, x2 = hinge_arguments(22, (4, 3)), local.standard_normal((4, 3))
    t = local.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], (4, 3))  # any value, not only +-1
    margin = 0.3
    x1 = x2 + (margin - z) / t  # so that -t (x1 - x2) + margin = z

    def loss(input1, input2, target, margin, reduction="mean"):
        return F.margin_ranking_loss(input1, input2, target, margin=margin, reduction=reduction)

    check_grads64(lambda margin: loss(x1, x2, t, margin, "none"), margin)
    check_grads64(loss, x1, x2, t, margin)
    with jax.enable_x64(True):
        grad = jax.grad(loss, argnums=3)(x1, x2, t, jnp.float64(margin))
        np.testing.assert_allclose(grad, np.mean(z > 0), rtol=1e-12)


def test_hinge_embedding_margin_derivatives():
    """d loss / d margin is 1 where t != 1 and x < margin, else 0: for 'mean', that fraction."""
    margin = -0.4
    z = hinge_arguments(23, (4, 3))
    x = margin - z  # the hinge's argument margin - x is z
    t = np.random.default_rng(24).choice([1.0, -1.0, 0.0, 2.0], (4, 3))

    def loss(input, margin, reduction="mean"):
        return F.hinge_embedding_loss(input, t, margin=margin, reduction=reduction)

    check_grads64(lambda margin: loss(x, margin, "none"), margin)
    check_grads64(loss, x, margin)
    with jax.enable_x64(True):
        grad = jax.grad(loss, argnums=1)(jnp.asarray(x), jnp.float64(margin))
        np.testing.assert_allclose(grad, np.mean((t != 1) & (z > 0)), rtol=1e-12)
