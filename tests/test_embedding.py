"""Parity of cosine_embedding_loss, pairwise_distance, triplet_margin_loss and triplet_margin_with_distance_loss
with torch, values and gradients."""

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
    Case,
    check_low_precision,
    check_parity,
    check_raises,
    grid,
)

import jaxloss
import jaxloss._embedding as embedding
import jaxloss.functional as F

rng = np.random.default_rng(0)
INF = float("inf")


def normal(*shape):
    return rng.standard_normal(shape)


def array(*rows):
    return np.array(rows, dtype=np.float64)


def signs(n):
    return rng.choice([-1.0, 1.0], size=n)


def with_grad(variants, grad):
    return {name: {"grad": grad, **variant} for name, variant in variants.items()}


# ------------------------------------------------------------------------------------------------------------
# cosine_embedding_loss


def cases(loss, variants, full=()):
    """The variants named in `full` with every reduction, the empty ones with 'mean' (NaN) and 'sum' (0), the
    rest with 'none' only: its random cotangent already checks every element's gradient."""
    return [
        case
        for name, variant in variants.items()
        for case in grid(
            loss,
            {name: variant},
            ("none", "mean", "sum") if name in full else ("mean", "sum") if "empty" == name else ("none",),
        )
    ]


COSINE_VARIANTS = {
    **with_grad(
        {
            "2d": dict(arrays=dict(input1=normal(5, 4), input2=normal(5, 4), target=signs(5))),
            "1d": dict(
                arrays=dict(input1=normal(4), input2=normal(4), target=np.array(-1.0)), options=dict(margin=-0.2)
            ),
            "broadcast_batch_margin0.3": dict(
                arrays=dict(input1=normal(1, 4), input2=normal(5, 4), target=signs(5)), options=dict(margin=0.3)
            ),
            "target_broadcasts_batch": dict(arrays=dict(input1=normal(1, 4), input2=normal(1, 4), target=signs(3))),
            # Only exactly 1 and -1 select a branch: 0, 0.5, 2, -1.5 give 0.
            "other_targets": dict(
                arrays=dict(input1=normal(6, 3), input2=normal(6, 3), target=array(1.0, -1.0, 0.0, 0.5, 2.0, -1.5))
            ),
            "int_target": dict(
                arrays=dict(input1=normal(5, 3), input2=normal(5, 3), target=np.array([1, -1, 0, 1, -1])),
                options=dict(margin=-0.3),
            ),
            "bool_target": dict(
                arrays=dict(input1=normal(4, 3), input2=normal(4, 3), target=np.array([True, False, True, False]))
            ),
            # cos - margin == 0 exactly (orthogonal pairs, a zero vector) with margin 0: clamp_min passes the
            # gradient; a zero vector's cosine is 0 thanks to the 1e-12 in the squared norms.
            "clamp_ties": dict(
                arrays=dict(
                    input1=array([1.0, 0.0], [0.0, 0.0], [2.0, -1.0], [1.0, 0.0], [3.0, 4.0]),
                    input2=array([0.0, 1.0], [1.0, 2.0], [1.0, 2.0], [1.0, 0.0], [0.0, 0.0]),
                    target=array(-1.0, -1.0, -1.0, -1.0, 1.0),
                )
            ),
            "extreme": dict(
                arrays=dict(
                    input1=array([1e9, -1e9, 1.0], [-1e9, 1e9, 1e9], [1e-9, 0.0, -1e-9]),
                    input2=array([1e9, 1e9, -1e9], [1.0, -1e9, 1e9], [-1e9, 1e9, 1.0]),
                    target=array(1.0, -1.0, -1.0),
                )
            ),
            "empty": dict(arrays=dict(input1=normal(0, 4), input2=normal(0, 4), target=normal(0))),
            "empty_d": dict(arrays=dict(input1=normal(3, 0), input2=normal(3, 0), target=array(1.0, -1.0, 1.0))),
        },
        grad=("input1", "input2"),
    ),
    # A (5, 1) input2 repeats one value c along D, and the cosine does not depend on |c|: its gradient is 0 up
    # to rounding noise, so only input1's is compared.
    "broadcast_d": dict(arrays=dict(input1=normal(5, 4), input2=normal(5, 1), target=signs(5)), grad=("input1",)),
}
COSINE_CASES = cases("cosine_embedding_loss", COSINE_VARIANTS, full=("2d",))

# ------------------------------------------------------------------------------------------------------------
# triplet_margin_loss


def triplet(*shapes, **options):
    a, p, n = shapes if len(shapes) == 3 else shapes * 3
    return dict(arrays=dict(anchor=normal(*a), positive=normal(*p), negative=normal(*n)), options=options)


def triplet_rows(anchor, positive, negative, **options):
    return dict(
        arrays=dict(anchor=array(*anchor), positive=array(*positive), negative=array(*negative)), options=options
    )


def stack(*variants, **options):
    """One variant holding the rows of `variants`, with `options`."""
    arrays = {name: np.concatenate([v["arrays"][name] for v in variants]) for name in variants[0]["arrays"]}
    return dict(arrays=arrays, options=options)


P_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0, INF, -INF)

# Rows where margin + d(a, p) - d(a, n) == 0 exactly, with eps = 0 and margin 3, for p = 1, 2 and inf (where the
# norms of these integer vectors are exact), then a row above the margin and one below it.
MARGIN_TIES = {
    1.0: triplet_rows(
        [[0.0, 0.0, 0.0]] * 3,
        [[1.0, 2.0, 0.0], [0.0, -2.0, 2.0], [1.0, 1.0, 0.0]],
        [[2.0, -4.0, 0.0], [3.0, 0.0, 4.0], [1.0, 1.5, 0.0]],
    ),
    2.0: triplet_rows(
        [[0.0, 0.0, 0.0]] * 3,
        [[6.0, 8.0, 0.0], [0.0, -8.0, 6.0], [1.0, 1.0, 0.0]],
        [[5.0, 12.0, 0.0], [-12.0, 0.0, 5.0], [1.0, 1.5, 0.0]],
    ),
    INF: triplet_rows(
        [[0.0, 0.0, 0.0]] * 3,
        [[3.0, 1.0, 0.0], [-2.0, -3.0, 3.0], [1.0, 1.0, 0.0]],
        [[6.0, -2.0, 0.0], [1.0, 6.0, -6.0], [1.0, 1.5, 0.0]],
    ),
}

# Under swap, d(a, n) == d(p, n) exactly: anchor == positive, and differences whose first two entries are
# swapped (x + y == y + x in floating point too, so the norms are equal).
SWAP_TIES = triplet_rows(
    [[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [1.0, 2.0, 0.0]],
    [[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [2.0, 1.0, 0.0]],
    [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]],
)

# Zero difference vectors with eps = 0 (a == p, a == n, p == n), where torch's norm gradient is 0; inf-norm
# ties (several |entries| equal to the maximum or minimum), shared equally among them; and random rows.
ZERO_DIFFERENCES_AND_TIES = stack(
    triplet_rows(
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 1.0, -1.0], [2.0, 2.0, -2.0]],
        [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 0.0, -0.5], [0.5, -0.5, 1.0]],
        [[0.5, 1.0, -2.0], [1.0, 2.0, 3.0], [0.0, 1.0, -1.0], [0.0, 0.0, 0.0]],
    ),
    triplet((3, 3)),
)

TRIPLET_VARIANTS = with_grad(
    {
        "2d": triplet((4, 5)),
        "1d": triplet((5,)),
        "0d": triplet(()),
        "3d": triplet((2, 3, 4)),
        "broadcast_batch": triplet((4, 5), (1, 5), (4, 5)),
        "broadcast_last_axis": triplet((4, 1), (4, 5), (4, 3)),
        **{
            f"p{p}": stack(
                ZERO_DIFFERENCES_AND_TIES, *[MARGIN_TIES[p]] if p in MARGIN_TIES else (), p=p, eps=0.0, margin=3.0
            )
            for p in P_VALUES
        },
        **{
            f"p{p}_swap": stack(ZERO_DIFFERENCES_AND_TIES, SWAP_TIES, p=p, eps=0.0, margin=5.0, swap=True)
            for p in (1.0, 2.0, INF)
        },
        "margin0.2_eps0.1_swap": triplet((4, 5), margin=0.2, eps=0.1, swap=True),
        "extreme": triplet_rows(
            [[1e9, -1e9, 0.0], [-1e9, 1e9, 1e9]],
            [[-1e9, 1e9, 1.0], [1.0, -1e9, 0.0]],
            [[1e9, 1e9, -1e9], [-1e9, 1e9, 1e9 + 1024]],
        ),
        "empty": triplet((0, 5)),
        "empty_d": triplet((4, 0)),
    },
    grad=("anchor", "positive", "negative"),
)
TRIPLET_CASES = cases("triplet_margin_loss", TRIPLET_VARIANTS, full=("2d",))

# ------------------------------------------------------------------------------------------------------------
# triplet_margin_with_distance_loss: distance functions written with operators and methods that torch tensors
# and JAX arrays share, so that one Case runs in both.


def l1_distance(x, y):
    return abs(x - y).sum(-1)


def squared_distance(x, y):
    return ((x - y) ** 2).sum(-1)


def cosine_distance(x, y):
    return 1 - (x * y).sum(-1) / ((x * x).sum(-1) * (y * y).sum(-1)) ** 0.5


def column_distance(x, y):
    """A distance of shape (N, 1): the loss takes that shape."""
    return ((x - y) ** 2).sum(-1)[..., None]


TMWD_VARIANTS = with_grad(
    {
        "default_2d": triplet((4, 5)),
        # Under swap, anchor == positive makes d(a, n) == d(p, n): half the gradient to each.
        "default_swap": stack(SWAP_TIES, triplet((3, 3)), margin=5.0, swap=True),
        "l1": triplet((4, 5), distance_function=l1_distance),
        # margin + d(a, p) - d(a, n) == 0 in the first row (no zero entries: JAX's abs has derivative 1 at 0,
        # torch's 0, and that is the distance function's business, not the loss's).
        "l1_margin_tie": triplet_rows(
            [[0.0, 0.0, 0.0]] * 3,
            [[1.0, 1.0, 1.0], [1.0, -1.0, 2.0], [1.0, 1.0, 1.0]],
            [[2.0, 2.0, 2.0], [-2.0, 3.0, -1.0], [3.0, 3.0, 3.0]],
            distance_function=l1_distance,
            margin=3.0,
        ),
        "squared_swap": stack(SWAP_TIES, triplet((3, 3)), distance_function=squared_distance, margin=5.0, swap=True),
        "cosine_3d_broadcast_batch": triplet((2, 3, 4), (2, 1, 4), (2, 3, 4), distance_function=cosine_distance),
        "cosine_swap_margin0.5": triplet((4, 5), distance_function=cosine_distance, swap=True, margin=0.5),
        "column": triplet((4, 5), distance_function=column_distance, swap=True),
    },
    grad=("anchor", "positive", "negative"),
)
TMWD_CASES = cases("triplet_margin_with_distance_loss", TMWD_VARIANTS, full=("default_2d",))

# ------------------------------------------------------------------------------------------------------------
# pairwise_distance (no reduction)


def pairwise(name, x1, x2, **options):
    return Case(
        loss="pairwise_distance",
        id=f"pairwise_distance-{name}",
        arrays=dict(x1=x1, x2=x2),
        options=options,
        grad=("x1", "x2"),
    )


PAIRWISE_CASES = [
    pairwise("2d", normal(4, 5), normal(4, 5)),
    pairwise("2d_vs_1d_keepdim", normal(4, 5), normal(5), keepdim=True),
    pairwise("0d_keepdim", normal(), normal(), keepdim=True),
    pairwise("outer_broadcast_p3", normal(4, 1), normal(1, 5), p=3.0, eps=0.1),
    pairwise("3d_vs_1d_keepdim_pinf", normal(2, 3, 4), normal(4), p=INF, keepdim=True),
    pairwise("empty_batch_pinf", normal(0, 3), normal(0, 3), p=INF),
    pairwise("overflow_underflow", array([1e20, 1e20], [1e-30, 1e-30]), np.zeros((2, 2)), eps=0.0),
]

ALL_CASES = COSINE_CASES + TRIPLET_CASES + TMWD_CASES + PAIRWISE_CASES


def integers(*shape):
    return rng.integers(-5, 6, shape)


def integer_triplet(**options):
    return dict(arrays={name: integers(4, 3) for name in ("anchor", "positive", "negative")}, options=options)


# Integer inputs compute in float32 (torch's default dtype) whatever the floating dtype under test: they run in
# the f32 harness only.
INTEGER_CASES = [
    *grid(
        "cosine_embedding_loss",
        {
            "int_inputs": dict(arrays=dict(input1=integers(4, 3), input2=integers(4, 3), target=signs(4))),
            "bool_and_int_inputs": dict(arrays=dict(input1=integers(4, 3) > 0, input2=integers(4, 3), target=signs(4))),
        },
        ("none",),
    ),
    *grid("triplet_margin_loss", {"int_inputs_swap": integer_triplet(swap=True)}, ("none",)),
    *grid("triplet_margin_with_distance_loss", {"int_inputs": integer_triplet()}, ("mean",)),
    Case(loss="pairwise_distance", id="pairwise_distance-int_inputs", arrays=dict(x1=integers(4, 3), x2=integers(3))),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_parity(case, dtype, mode):
    check_parity(case, dtype, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", INTEGER_CASES, ids=str)
def test_integer_inputs(case, mode):
    check_parity(case, "f32", mode)


LOW_PRECISION_IDS = {
    "cosine_embedding_loss-2d-mean",
    "cosine_embedding_loss-other_targets-none",
    "triplet_margin_loss-2d-mean",
    "triplet_margin_loss-p1.0_swap-none",
    "triplet_margin_with_distance_loss-cosine_swap_margin0.5-none",
    "pairwise_distance-2d",
}


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("case", [case for case in ALL_CASES if case.id in LOW_PRECISION_IDS], ids=str)
def test_low_precision(case, dtype):
    check_low_precision(case, dtype)


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
    anchor, positive, negative = normal(6, 5), normal(6, 5), normal(6, 5)
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

    input1, input2, target = normal(6, 4), normal(6, 4), signs(6)
    expected = torch.nn.functional.cosine_embedding_loss(
        *(torch.tensor(x) for x in (input1, input2, target)), margin=0.1, reduction="none"
    ).numpy()
    with jax.enable_x64(True):
        per_pair = jax.vmap(lambda x1, x2, t: F.cosine_embedding_loss(x1, x2, t, margin=0.1))
        np.testing.assert_allclose(per_pair(input1, input2, target), expected, rtol=1e-12)


def test_custom_distance_is_not_recompiled_per_call():
    """A fresh lambda per call reuses the jitted part after the distances (the function is not a static
    argument); under an outer jit (and grad) the whole loss, distance function included, is one computation."""
    anchor, positive, negative = (jnp.asarray(normal(4, 5), jnp.float32) for _ in range(3))

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
    anchor, positive, negative = (jnp.asarray(normal(4, 5), jnp.float32) for _ in range(3))
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
