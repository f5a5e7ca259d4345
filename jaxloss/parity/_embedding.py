"""The embedding losses' parity grid: cosine_embedding_loss, pairwise_distance, triplet_margin_loss and
triplet_margin_with_distance_loss.

Batched and unbatched inputs, operands that broadcast (on the batch and on the last axis), empty batches and empty
vectors; targets of any value (only exactly 1 and -1 select a branch), integer and boolean ones; every p of the
p-norm that torch accepts (0, fractional, negative, +-inf) with eps = 0, zero difference vectors (where torch's
norm gradient is 0) and ties of the inf-norm; rows exactly on the hinge's kink and, under swap, exactly on the
tie d(a, n) == d(p, n); entries of +-1e9 and norms that overflow or underflow; custom distance functions (written
with operators that torch tensors and JAX arrays share, so that one `Case` runs in both), one of shape (N, 1); and
integer inputs (float32 only).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid

rng = np.random.default_rng(0)
INF = float("inf")


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def array(*rows: Any) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def signs(n: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=n)


def with_grad(variants: Mapping[str, Mapping[str, Any]], grad: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {name: {"grad": grad, **variant} for name, variant in variants.items()}


# ------------------------------------------------------------------------------------------------------------
# cosine_embedding_loss


def variant_cases(loss: str, variants: Mapping[str, Mapping[str, Any]], full: tuple[str, ...] = ()) -> list[Case]:
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
COSINE_CASES = variant_cases("cosine_embedding_loss", COSINE_VARIANTS, full=("2d",))

# ------------------------------------------------------------------------------------------------------------
# triplet_margin_loss


def triplet(*shapes: tuple[int, ...], **options: Any) -> dict[str, Any]:
    a, p, n = shapes if len(shapes) == 3 else shapes * 3
    return dict(arrays=dict(anchor=normal(*a), positive=normal(*p), negative=normal(*n)), options=options)


def triplet_rows(anchor: Any, positive: Any, negative: Any, **options: Any) -> dict[str, Any]:
    return dict(
        arrays=dict(anchor=array(*anchor), positive=array(*positive), negative=array(*negative)), options=options
    )


def stack(*variants: dict[str, Any], **options: Any) -> dict[str, Any]:
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
TRIPLET_CASES = variant_cases("triplet_margin_loss", TRIPLET_VARIANTS, full=("2d",))

# ------------------------------------------------------------------------------------------------------------
# triplet_margin_with_distance_loss: distance functions written with operators and methods that torch tensors
# and JAX arrays share, so that one Case runs in both (they take and return either).


def l1_distance(x: Any, y: Any) -> Any:
    return abs(x - y).sum(-1)


def squared_distance(x: Any, y: Any) -> Any:
    return ((x - y) ** 2).sum(-1)


def cosine_distance(x: Any, y: Any) -> Any:
    return 1 - (x * y).sum(-1) / ((x * x).sum(-1) * (y * y).sum(-1)) ** 0.5


def column_distance(x: Any, y: Any) -> Any:
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
TMWD_CASES = variant_cases("triplet_margin_with_distance_loss", TMWD_VARIANTS, full=("default_2d",))

# ------------------------------------------------------------------------------------------------------------
# pairwise_distance (no reduction)


def pairwise(name: str, x1: np.ndarray, x2: np.ndarray, **options: Any) -> Case:
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


def integers(*shape: int) -> np.ndarray:
    return rng.integers(-5, 6, shape)


def integer_triplet(**options: Any) -> dict[str, Any]:
    return dict(arrays={name: integers(4, 3) for name in ("anchor", "positive", "negative")}, options=options)


# Integer inputs compute in float32 (torch's default dtype) whatever the floating dtype of the run: they run in
# float32 only.
INTEGER_CASES = [
    dataclasses.replace(case, dtypes=("float32",))
    for case in [
        *grid(
            "cosine_embedding_loss",
            {
                "int_inputs": dict(arrays=dict(input1=integers(4, 3), input2=integers(4, 3), target=signs(4))),
                "bool_and_int_inputs": dict(
                    arrays=dict(input1=integers(4, 3) > 0, input2=integers(4, 3), target=signs(4))
                ),
            },
            ("none",),
        ),
        *grid("triplet_margin_loss", {"int_inputs_swap": integer_triplet(swap=True)}, ("none",)),
        *grid("triplet_margin_with_distance_loss", {"int_inputs": integer_triplet()}, ("mean",)),
        Case(
            loss="pairwise_distance", id="pairwise_distance-int_inputs", arrays=dict(x1=integers(4, 3), x2=integers(3))
        ),
    ]
]

CASES: list[Case] = COSINE_CASES + TRIPLET_CASES + TMWD_CASES + PAIRWISE_CASES + INTEGER_CASES

# In 16 bits too (`Case.in_16_bit`): the 2-D cases of cosine_embedding_loss, triplet_margin_loss and
# pairwise_distance; cosine_embedding_loss's targets other than ±1; triplet_margin_loss with p = 1 under swap (zero
# differences and ties); triplet_margin_with_distance_loss with a cosine distance under swap.
CASES += [
    case.in_16_bit()
    for case in CASES
    if case.id
    in {
        "cosine_embedding_loss-2d-mean",
        "cosine_embedding_loss-other_targets-none",
        "triplet_margin_loss-2d-mean",
        "triplet_margin_loss-p1.0_swap-none",
        "triplet_margin_with_distance_loss-cosine_swap_margin0.5-none",
        "pairwise_distance-2d",
    }
]
