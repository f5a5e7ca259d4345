"""Parity of cosine_embedding_loss, pairwise_distance, triplet_margin_loss and triplet_margin_with_distance_loss
with torch, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from parity import check_raises, runs

import jaxloss
import jaxloss._embedding as embedding
import jaxloss.functional as F
from jaxloss.parity._embedding import CASES, l1_distance, squared_distance

rng = np.random.default_rng(1)
INF = float("inf")


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


def test_mixed_dtypes_promote_like_torch():
    with jax.enable_x64(True):
        x32, x64 = jnp.ones((2, 3), jnp.float32), jnp.full((2, 3), 2.0, jnp.float64)
        t64 = jnp.ones(2, jnp.float64)
        assert F.cosine_embedding_loss(x32, x64, t64).dtype == jnp.float64
        assert F.cosine_embedding_loss(x32, x32, t64).dtype == jnp.float32  # the target's dtype does not count
        assert F.triplet_margin_loss(x32, x64, x32).dtype == jnp.float64
        i32, f16 = x32.astype(jnp.int32), x32.astype(jnp.float16)
        assert F.triplet_margin_loss(i32, f16, i32).dtype == jnp.float16  # integers take the floats' dtype
        assert F.pairwise_distance(x32.astype(jnp.int64), x32.astype(jnp.int64)).dtype == jnp.float32


# ------------------------------------------------------------------------------------------------------------
# Bad input

X = jnp.ones((4, 3))
T = jnp.array([1.0, -1.0, 1.0, -1.0])


def test_cosine_bad_input():
    loss = F.cosine_embedding_loss
    check_raises(lambda: loss(X, X, T, reduction="batchmean"), ValueError, "`reduction` must be one of")
    check_raises(lambda: loss(X, X, T[:, None]), ValueError, "`target` must be 0-D or 1-D")
    check_raises(lambda: loss(X, X, T[0]), ValueError, "a 0-D `target` expects 1-D `input1` and `input2`")
    check_raises(lambda: loss(X[0], X[0], T[:1]), ValueError, "a 1-D `target` expects 2-D `input1` and `input2`")
    check_raises(lambda: loss(X[0], X, T), ValueError, "expects 2-D")
    check_raises(lambda: loss(X[None], X[None], T), ValueError, "expects 2-D")
    check_raises(lambda: loss(X, X, T[:3]), ValueError, "do not broadcast.*`target` \\(3,\\)")
    check_raises(lambda: loss(X, X[:, :2], T), ValueError, "do not broadcast.*`input1`")
    check_raises(lambda: loss(X.astype(jnp.complex64), X, T), TypeError, "`input1` must be a floating-point")
    check_raises(lambda: loss(X, X.astype(jnp.complex64), T), TypeError, "`input2` must be a floating-point")
    check_raises(lambda: loss(X, X, T.astype(jnp.complex64)), TypeError, "`target` must be a boolean, integer")
    check_raises(lambda: loss(X, X, T, margin=None), TypeError, "`margin` must be a real number")


def test_triplet_bad_input():
    loss = F.triplet_margin_loss
    check_raises(lambda: loss(X, X, X, reduction="avg"), ValueError, "`reduction` must be one of")
    check_raises(lambda: loss(X, X, X, margin=0.0), ValueError, "`margin` must be greater than 0; got 0.0")
    check_raises(lambda: loss(X, X, X, margin=-1), ValueError, "`margin` must be greater than 0")
    check_raises(lambda: loss(X, X[0], X), ValueError, "same number of dimensions; got 2-D, 1-D and 2-D")
    check_raises(lambda: loss(X, X, X[:, :2]), ValueError, "do not broadcast.*`anchor` \\(4, 3\\), `negative`")
    # Each pair broadcasts on its own axis, but the distances (4,) and (3,) do not.
    check_raises(lambda: loss(X[:1], X, X[:3]), ValueError, "do not broadcast.*`d\\(anchor, negative\\)` \\(3,\\)")
    # Without swap the last axes of positive and negative never meet (torch accepts it); with swap they do.
    assert loss(X[:, :1], X, X[:, :2]).shape == ()
    check_raises(lambda: loss(X[:, :1], X, X[:, :2], swap=True), ValueError, "`positive` \\(4, 3\\), `negative`")
    check_raises(lambda: loss(X, X, X, swap=1), TypeError, "`swap` must be a bool")
    check_raises(lambda: loss(X > 0, X, X), TypeError, "`anchor` must be a floating-point")
    check_raises(lambda: loss(X, X, X.astype(jnp.complex64)), TypeError, "`negative` must be a floating-point")
    for p in (INF, -INF, -1.0):
        empty = X[:, :0]
        check_raises(lambda: loss(empty, empty, empty, p=p), ValueError, "undefined over an empty last axis")
    check_raises(lambda: loss(X, X, X, p=None), TypeError, "`p` must be a real number")
    # torch's order: reduction, then margin, then ndim.
    check_raises(lambda: loss(X, X[0], X, margin=0.0, reduction="avg"), ValueError, "`reduction`")
    check_raises(lambda: loss(X, X[0], X, margin=0.0), ValueError, "`margin`")


def test_triplet_with_distance_bad_input():
    loss = F.triplet_margin_with_distance_loss
    with pytest.raises(TypeError, match="positional"):
        loss(X, X, X, l1_distance)  # keyword-only, as in torch
    check_raises(lambda: loss(X, X[0], X, margin=0.0, reduction="avg"), ValueError, "`reduction`")
    for distance in (None, l1_distance):
        check_raises(lambda: loss(X, X[0], X, distance_function=distance, margin=0.0), ValueError, "`margin`")
        check_raises(lambda: loss(X, X[0], X, distance_function=distance), ValueError, "same number of dimensions")
    check_raises(
        lambda: loss(X, X, X[:2], distance_function=lambda x, y: y.sum(-1)),
        ValueError,
        "^triplet_margin_with_distance_loss: shapes do not broadcast.*`distance_function\\(anchor, negative\\)`",
    )

    def boolean(x, y):
        return x[:, 0] > y[:, 0]

    check_raises(lambda: loss(X, X, X, distance_function=boolean), TypeError, "must be a floating")
    check_raises(lambda: loss(X, X, X, distance_function="l1"), TypeError, "`distance_function` must be callable")


def test_pairwise_distance_bad_input():
    check_raises(lambda: F.pairwise_distance(X, X[:3]), ValueError, "pairwise_distance: shapes do not broadcast")
    check_raises(lambda: F.pairwise_distance(X[:, :0], X[:, :0], p=-1.0), ValueError, "empty last axis")
    check_raises(lambda: F.pairwise_distance(X > 0, X), TypeError, "`x1` must be a floating-point")


# ------------------------------------------------------------------------------------------------------------
# Transformations


def test_vmap_matches_torch_batch():
    anchor, positive, negative = rng.standard_normal((3, 6, 5))
    expected = torch.nn.functional.triplet_margin_loss(
        *(torch.tensor(x) for x in (anchor, positive, negative)), p=1.0, swap=True, reduction="none"
    ).numpy()
    with jax.enable_x64(True):

        def unbatched(a, p, n):  # 1-D rows: 0-dim losses
            return F.triplet_margin_loss(a, p, n, p=1.0, swap=True)

        np.testing.assert_allclose(jax.vmap(unbatched)(anchor, positive, negative), expected, rtol=1e-12)

        def with_distance(a, p, n):
            return F.triplet_margin_with_distance_loss(
                a, p, n, distance_function=lambda x, y: jnp.sum(jnp.abs(x - y + 1e-6), axis=-1), swap=True
            )

        np.testing.assert_allclose(jax.vmap(with_distance)(anchor, positive, negative), expected, rtol=1e-12)

    (input1, input2), target = rng.standard_normal((2, 6, 4)), rng.choice([-1.0, 1.0], 6)
    expected = torch.nn.functional.cosine_embedding_loss(
        *(torch.tensor(x) for x in (input1, input2, target)), margin=0.1, reduction="none"
    ).numpy()
    with jax.enable_x64(True):
        per_pair = jax.vmap(lambda x1, x2, t: F.cosine_embedding_loss(x1, x2, t, margin=0.1))
        np.testing.assert_allclose(per_pair(input1, input2, target), expected, rtol=1e-12)


def test_custom_distance_is_not_recompiled_per_call():
    """A fresh lambda per call reuses the jitted part after the distances (the function is not a static
    argument); under an outer jit (and grad) the whole loss, distance function included, is one computation."""
    anchor, positive, negative = jnp.asarray(rng.standard_normal((3, 4, 5)), jnp.float32)

    def loss(anchor):  # a new lambda on every call
        return F.triplet_margin_with_distance_loss(
            anchor, positive, negative, distance_function=lambda x, y: jnp.sum((x - y) ** 2, axis=-1)
        )

    values = [loss(anchor)]
    size = embedding._triplet_from_custom_distances.jitted._cache_size()
    values += [loss(anchor) for _ in range(3)]
    assert embedding._triplet_from_custom_distances.jitted._cache_size() == size
    values.append(jax.jit(loss)(anchor))
    np.testing.assert_allclose(values, values[0], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(anchor), jax.grad(loss)(anchor), rtol=1e-6)


def test_default_distance_is_triplet_margin_loss():
    anchor, positive, negative = jnp.asarray(rng.standard_normal((3, 4, 5)), jnp.float32)
    for swap in (False, True):
        np.testing.assert_array_equal(
            F.triplet_margin_with_distance_loss(anchor, positive, negative, swap=swap, reduction="none"),
            F.triplet_margin_loss(anchor, positive, negative, swap=swap, reduction="none"),
        )


# ------------------------------------------------------------------------------------------------------------
# Float options as data: derivatives with respect to `margin` and `eps` against finite differences (float64, as
# in test_custom_derivatives.py: every point at least KINK_DISTANCE from the hinge's kink, from the swap's tie and
# from a zero difference vector), and the triplet margin's range as a value check when it is traced.

GRAD_TOLERANCE = dict(atol=1e-8, rtol=1e-6, eps=1e-6)
KINK_DISTANCE = 0.1


def p_distance(p, eps):
    """pairwise_distance in NumPy."""
    return lambda x, y: np.sum(np.abs(x - y + eps) ** p, axis=-1) ** (1 / p)


def cosine_point(margin):
    """Six (x1, x2, target) rows, each target -1 row with |cos - margin| >= KINK_DISTANCE; both sides of the
    hinge among them."""
    point_rng = np.random.default_rng(1)
    x1, x2 = point_rng.standard_normal((2, 60, 4))
    cos = np.sum(x1 * x2, -1) / np.sqrt(np.sum(x1 * x1, -1) * np.sum(x2 * x2, -1))
    keep = np.flatnonzero(np.abs(cos - margin) >= KINK_DISTANCE)[:6]
    assert np.any(cos[keep] > margin) and np.any(cos[keep] < margin)
    return x1[keep], x2[keep], np.array([-1.0, -1.0, 1.0, -1.0, -1.0, 1.0])


def triplet_point(margin, distance, swap=False):
    """Six (anchor, positive, negative) rows at least KINK_DISTANCE from the hinge's kink (and, with swap, from
    d(a, n) = d(p, n)) for `distance` (a NumPy function), three on each side of the hinge."""
    point_rng = np.random.default_rng(2)
    a, p, n = point_rng.standard_normal((3, 200, 4))
    d_an, d_pn = distance(a, n), distance(p, n)
    hinge = margin + distance(a, p) - (np.minimum(d_an, d_pn) if swap else d_an)
    ok = (np.abs(hinge) >= KINK_DISTANCE) & (not swap or np.abs(d_an - d_pn) >= KINK_DISTANCE)
    keep = np.concatenate([np.flatnonzero(ok & (hinge > 0))[:3], np.flatnonzero(ok & (hinge < 0))[:3]])
    assert len(keep) == 6
    return a[keep], p[keep], n[keep]


def squared_jnp(x, y):
    return jnp.sum((x - y + 0.05) ** 2, axis=-1)


def option_gradient_cases():
    """(id, function, arguments): a loss as a function of options alone, then of inputs and options."""
    x1, x2, target = cosine_point(0.2)
    a, p, n = triplet_point(0.7, p_distance(2, 0.05))
    margin, eps = np.array(0.7), np.array(0.05)
    return [
        (
            "cosine_embedding_loss-margin",
            lambda m: F.cosine_embedding_loss(x1, x2, target, margin=m, reduction="none"),
            (np.array(0.2),),
        ),
        (
            "cosine_embedding_loss-inputs_margin",
            lambda x1, x2, m: F.cosine_embedding_loss(x1, x2, target, margin=m),
            (x1, x2, np.array(0.2)),
        ),
        ("pairwise_distance-eps", lambda e: F.pairwise_distance(a, p, eps=e), (eps,)),
        ("pairwise_distance-p3-inputs_eps", lambda x, y, e: F.pairwise_distance(x, y, p=3.0, eps=e), (a, p, eps)),
        (
            "triplet_margin_loss-margin_eps",
            lambda m, e: F.triplet_margin_loss(a, p, n, margin=m, eps=e, reduction="none"),
            (margin, eps),
        ),
        (
            "triplet_margin_loss-swap-inputs_margin_eps",
            lambda a, p, n, m, e: F.triplet_margin_loss(a, p, n, margin=m, eps=e, swap=True),
            (*triplet_point(0.7, p_distance(2, 0.05), swap=True), margin, eps),
        ),
        (
            "triplet_margin_loss-p3-inputs_margin_eps",
            lambda a, p, n, m, e: F.triplet_margin_loss(a, p, n, margin=m, p=3.0, eps=e, reduction="sum"),
            (*triplet_point(0.7, p_distance(3, 0.05)), margin, eps),
        ),
        (
            "triplet_margin_with_distance_loss-inputs_margin",
            lambda a, p, n, m: F.triplet_margin_with_distance_loss(a, p, n, margin=m, reduction="none"),
            (*triplet_point(0.7, p_distance(2, 1e-6)), margin),
        ),
        (
            "triplet_margin_with_distance_loss-custom-swap-inputs_margin",
            lambda a, p, n, m: F.triplet_margin_with_distance_loss(
                a, p, n, distance_function=squared_jnp, margin=m, swap=True
            ),
            (*triplet_point(0.7, lambda x, y: np.sum((x - y + 0.05) ** 2, axis=-1), swap=True), margin),
        ),
    ]


OPTION_GRADIENT_CASES = option_gradient_cases()


@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("name, fn, args", OPTION_GRADIENT_CASES, ids=[case[0] for case in OPTION_GRADIENT_CASES])
def test_option_derivatives(name, fn, args, mode):
    with jax.enable_x64(True):
        check_grads(fn, args, order=2, modes=(mode,), **GRAD_TOLERANCE)
        check_grads(jax.jit(fn), args, order=1, modes=(mode,), **GRAD_TOLERANCE)


TRIPLET_LOSSES = {
    "triplet_margin_loss": F.triplet_margin_loss,
    "triplet_margin_with_distance_loss": F.triplet_margin_with_distance_loss,
    "triplet_margin_with_distance_loss-custom": lambda *args, **options: F.triplet_margin_with_distance_loss(
        *args, distance_function=squared_distance, **options
    ),
}


@pytest.mark.parametrize("reduction, swap", [("none", False), ("mean", True), ("sum", False)])
@pytest.mark.parametrize("name", TRIPLET_LOSSES)
def test_traced_margin_out_of_range_is_nan(name, reduction, swap):
    """A traced margin <= 0 (the screen cannot see it): NaN loss, NaN in every element of every gradient
    (inputs and margin, reverse and forward mode); a valid margin in the same compiled function is unaffected."""
    loss = TRIPLET_LOSSES[name]
    inputs = tuple(jnp.asarray(np.random.default_rng(3).standard_normal((3, 4, 3)), jnp.float32))

    def total(a, p, n, margin):
        return jnp.sum(loss(a, p, n, margin=margin, swap=swap, reduction=reduction))

    value_and_grad = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2, 3)))
    for margin in (0.0, -1.0):
        value, grads = value_and_grad(*inputs, margin)
        assert np.isnan(value)
        for grad in grads:
            assert np.all(np.isnan(grad)), grad
        losses = jax.jit(lambda *args: loss(*args[:3], margin=args[3], swap=swap, reduction=reduction))(*inputs, margin)
        assert np.all(np.isnan(losses))
        tangent = jax.jit(lambda *primals: jax.jvp(total, primals, (*inputs, 1.0))[1])(*inputs, margin)
        assert np.isnan(tangent)
    value, grads = value_and_grad(*inputs, 0.5)
    assert np.isfinite(value) and all(np.all(np.isfinite(grad)) for grad in grads)
    np.testing.assert_allclose(value, total(*inputs, 0.5), rtol=1e-6)  # fusion under jit may differ by an ulp
    # Batched margins: one flag per instance.
    per_margin = jax.vmap(total, in_axes=(None, None, None, 0))(*inputs, jnp.array([0.5, 0.0, -2.0]))
    assert np.isfinite(per_margin[0]) and np.all(np.isnan(per_margin[1:]))


@pytest.mark.parametrize("name", TRIPLET_LOSSES)
def test_known_margin_out_of_range_raises(name):
    loss = TRIPLET_LOSSES[name]
    message = f"^{name.removesuffix('-custom')}: `margin` must be greater than 0; got"
    for margin in (0.0, -1, jnp.array(0.0), jnp.array(-2, jnp.int32), np.float32(-0.5), np.array(0.0)):
        with pytest.raises(ValueError, match=message):
            loss(X, X, X, margin=margin)
    with pytest.raises(ValueError, match=message):  # eager grad: the margin's value is known
        jax.grad(lambda margin: loss(X, X, X, margin=margin))(0.0)
    # torch checks `not margin <= 0`: a NaN margin passes, and the loss is NaN.
    assert np.isnan(loss(X, X, X, margin=float("nan")))
    assert np.isnan(jax.jit(lambda margin: loss(X, X, X, margin=margin))(jnp.nan))


def test_traced_margin_out_of_range_is_a_checkify_error():
    error, value = jax.jit(jaxloss.checkify(lambda margin: F.triplet_margin_loss(X, X, X, margin=margin)))(0.0)
    assert error.get().startswith("triplet_margin_loss: `margin` must be greater than 0"), error.get()
    assert np.isnan(value)
    error, value = jax.jit(jaxloss.checkify(lambda margin: F.triplet_margin_loss(X, X, X, margin=margin)))(1.0)
    assert error.get() is None and value == 1.0
