"""Every hand-written derivative checked against finite differences, through the public losses.

The parity grids compare jaxloss's gradients with torch's. This file checks the derivatives against the losses'
own values instead, with `jax.test_util.check_grads` in float64: the custom JVP/VJP rules (`_subgradients.abs`,
`clamp_min` and `vector_norm`, BCE's `_bce_elements`, BCE-with-logits' `_logits_elements` and `_log_sigmoid`,
the Huber rule behind smooth_l1/huber, gaussian_nll's straight-through clamp, CTC's custom VJP) and the
`jax.checkpoint`-ed chunks of linear_cross_entropy, at orders 1 and 2, in forward and reverse mode (CTC: order
1, reverse only, as in torch; the unsupported modes must raise).

Finite differences say nothing at a kink, and a rule there is torch's choice of subgradient (tested by the
parity grids). So every point here lies at least `MARGIN` from every branch switch of the loss (by
construction, and asserted where that is not plain): far more than a finite-difference step of
``EPS · |tangent|`` (`check_grads` draws standard-normal tangents, so a few ``1e-6`` at most). Where a rule
deliberately is not the derivative of the value (BCE's floored denominator at x = 0 or 1, gaussian_nll's
straight-through clamp below `eps`, CTC's convention for ``log_probs``, its dropped blank term when a target
ends with the blank), the points or the composition keep clear of it, as said case by case.
"""

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxloss.functional as F
from jaxloss.nn import LinearCrossEntropyOptions

# Central differences in float64 err by ~EPS² · |f'''| (truncation) plus ~1e-16 · |f| / EPS (rounding): with
# EPS = 1e-6 both stay near 1e-10 relative for these O(1) losses (BCE's derivatives grow like x^-k; x >= 0.1),
# far under RTOL (every check below uses at most 0.5% of the tolerances), which leaves room for other BLAS
# and platforms. check_grads scales both tolerances by the compared array's size. Still, a derivative off by
# a relative 1e-5, or only in its own derivative (order 2), fails: `test_tolerances_catch_small_errors`.
EPS = 1e-6
TOLERANCE = dict(atol=1e-8, rtol=1e-6, eps=EPS)
MARGIN = 0.1  # the least distance of every point from a kink, in the units of the kink's argument
# The reduction of an elementwise loss is a plain sum or mean after the custom rules, which 'none' checks
# element by element (forward mode compares every element's tangent). Where a reduction takes a path of its own,
# it is checked too: l1's weighted mean, CTC's division by the target lengths, linear_cross_entropy's per-row
# losses ('none') against per-chunk sums ('mean', divided by a total weight that depends on `weight`, and 'sum').
ELEMENTWISE = ("none",)
REDUCTIONS = ("none", "mean", "sum")


@dataclasses.dataclass(frozen=True)
class Case:
    """A loss as a function of its differentiable arguments, at one point.

    Attributes:
      id: ``{loss}-{variant}-{reduction}``.
      fn: the loss (from `jaxloss.functional`), called with keyword arguments.
      wrt: the arguments differentiated, by name, as float64 NumPy arrays.
      fixed: the other arguments, held constant.
      jit: whether to run under `jax.jit` (see `execution`) rather than op by op.
    """

    id: str
    fn: Callable[..., jax.Array]
    wrt: dict[str, np.ndarray]
    fixed: dict[str, Any]
    jit: bool = False

    def __str__(self) -> str:
        return self.id

    def loss(self, *values: jax.Array) -> jax.Array:
        return self.fn(**self.fixed, **dict(zip(self.wrt, values, strict=True)))


def cases(
    name: str,
    variant: str,
    wrt: dict[str, np.ndarray],
    fixed: dict[str, Any] | None = None,
    reductions: tuple[str | None, ...] = ELEMENTWISE,
    jit: bool = False,
) -> list[Case]:
    """One `Case` per reduction (None: the function takes no `reduction`)."""
    fn = getattr(F, name)
    return [
        Case(
            id="-".join(filter(None, (name, variant, reduction, "jit" if jit else None))),
            fn=fn,
            wrt=wrt,
            fixed={**(fixed or {}), **({} if reduction is None else {"reduction": reduction})},
            jit=jit,
        )
        for reduction in reductions
    ]


def execution(jit: bool) -> contextlib.AbstractContextManager[Any]:
    """float64, and op by op unless `jit`.

    Op by op (`jax.disable_jit`), each primitive is compiled once per shape and dtype and reused by every case,
    where under `jax.jit` check_grads' order-2 checks compile ~13 programs per case: 5x the CPU time of this
    file. The rules and the arithmetic are the same. What op by op changes is that `lax.scan`/`lax.map` run
    as Python loops: so the chunked linear_cross_entropy also runs once under `jax.jit`, where its
    derivatives go through `lax.map` of `jax.checkpoint` as users get them, and CTC (order 1 only, whose
    scans op by op are long chains of tiny ops) always does.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(jax.enable_x64(True))
    if not jit:
        stack.enter_context(jax.disable_jit())
    return stack


# Samplers. Each draws from its own seeded generator, so that adding a case does not move the others' points.


def signed(seed: int, shape: tuple[int, ...], *bands: tuple[float, float]) -> np.ndarray:
    """Values whose magnitudes lie in the given bands (one band drawn per element), with random signs."""
    rng = np.random.default_rng(seed)
    band = np.asarray(bands)[rng.integers(len(bands), size=shape)]
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(band[..., 0], band[..., 1])


def uniform(seed: int, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape)


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def away(values: np.ndarray, *kinks: float) -> np.ndarray:
    """`values`, after asserting that each lies at least `MARGIN` from every kink."""
    for kink in kinks:
        assert np.all(np.abs(np.asarray(values) - kink) >= MARGIN), f"a point within {MARGIN} of the kink {kink}"
    return values


def rows(
    seed: int, n: int, draw: Callable[[np.random.Generator], tuple[np.ndarray, ...]], ok: Callable[..., bool]
) -> tuple[np.ndarray, ...]:
    """`n` rows drawn by `draw` until `ok` accepts them (rejection sampling), stacked per part."""
    rng = np.random.default_rng(seed)
    accepted = []
    while len(accepted) < n:
        row = draw(rng)
        if ok(*row):
            accepted.append(row)
    return tuple(np.stack(part) for part in zip(*accepted, strict=True))


# Binary losses. BCE: probabilities in [0.1, 0.9], away from the floor of the denominator x (1 - x) at
# x = 0 and 1 (where the rule is torch's floored one, not the derivative) and from the -100 clamps of the logs.
# The logits of BCE-with-logits, soft_margin and multilabel_soft_margin have no kink (log σ is smooth; its
# custom rule only replaces autodiff of min(x, 0) - log1p(exp(-|x|))).

N, C = 3, 4
BINARY = [
    *cases(
        "binary_cross_entropy",
        "weight",
        dict(input=uniform(1, (N, C), 0.1, 0.9), target=uniform(2, (N, C), 0, 1), weight=uniform(3, (C,), 0.5, 2)),
    ),
    *cases(
        "binary_cross_entropy_with_logits",
        "weight",
        dict(input=2 * normal(4, (N, C)), target=uniform(5, (N, C), 0, 1), weight=uniform(6, (C,), 0.5, 2)),
    ),
    *cases(
        "binary_cross_entropy_with_logits",
        "weight_pos_weight",
        dict(
            input=2 * normal(7, (N, C)),
            target=uniform(8, (N, C), 0, 1),
            weight=uniform(9, (N, 1), 0.5, 2),
            pos_weight=uniform(10, (C,), 0.5, 3),
        ),
    ),
    *cases(
        "soft_margin_loss",
        "soft_target",
        dict(input=2 * normal(11, (N, C)), target=signed(12, (N, C), (0.5, 1.5))),
    ),
    *cases(
        "multilabel_soft_margin_loss",
        "weight",
        dict(input=2 * normal(13, (N, C)), target=uniform(14, (N, C), 0, 1), weight=uniform(15, (C,), 0.5, 2)),
    ),
]

# Regression: the differences d = input - target at least MARGIN from 0 (abs), and from ±β/±δ (Huber's switch
# from the quadratic to the linear branch), with elements in both branches.

target = normal(20, (N, C))
REGRESSION = [
    *cases("l1_loss", "plain", dict(input=target + signed(21, (N, C), (0.1, 2)), target=target)),
    *cases(
        "l1_loss",
        "weight",  # 'mean' is then the weighted average: a path of its own
        dict(input=target + signed(22, (N, C), (0.1, 2)), target=target, weight=uniform(23, (N, C), 0.5, 2)),
        reductions=REDUCTIONS,
    ),
    *cases(
        "smooth_l1_loss",
        "beta_1",
        dict(input=target + signed(24, (N, C), (0.1, 0.9), (1.1, 2)), target=target),
        dict(beta=1.0),
    ),
    *cases(
        "smooth_l1_loss",
        "beta_0",  # exactly l1 (`_subgradients.abs`), no Huber rule
        dict(input=target + signed(25, (N, C), (0.1, 2)), target=target),
        dict(beta=0.0),
    ),
    *cases(
        "huber_loss",
        "delta_0.5_weight",
        dict(
            input=target + signed(26, (N, C), (0.1, 0.4), (0.6, 2)),
            target=target,
            weight=uniform(27, (N, C), 0.5, 2),
        ),
        dict(delta=0.5),
    ),
]
for case in REGRESSION:  # every difference clear of 0 and of the Huber switch
    difference = case.wrt["input"] - case.wrt["target"]
    away(np.abs(difference), 0, *((case.fixed.get("beta") or case.fixed.get("delta") or 0.0),))

# gaussian_nll_loss: var in [0.2, 2], above `eps` = 1e-6, below which the clamp is straight-through (the rule
# gives the derivative at eps, while the value is constant there).

DISTRIBUTIONS = [
    *cases(
        "gaussian_nll_loss",
        "var_elementwise",
        dict(input=normal(30, (N, C)), target=normal(31, (N, C)), var=uniform(32, (N, C), 0.2, 2)),
    ),
    *cases(
        "gaussian_nll_loss",
        "var_per_row_full",
        dict(input=normal(33, (N, C)), target=normal(34, (N, C)), var=uniform(35, (N,), 0.2, 2)),
        dict(full=True),
    ),
]

# Margin losses (clamp_min): the hinge's argument at least MARGIN from 0.

hinge_margin = 1.0
hinge_input = away(hinge_margin - signed(40, (N, C), (0.1, 1.5)), hinge_margin)
ranking_target = np.random.default_rng(41).choice([-1.0, 1.0], (N, C))
ranking_input2 = normal(42, (N, C))
# -t (x1 - x2) + margin = z for x1 = x2 + t (margin - z), since t² = 1: the hinge argument is z itself.
ranking_hinge = signed(43, (N, C), (0.1, 1.5))
MARGINS = [
    *cases(
        "hinge_embedding_loss",
        "targets_1_-1_0",  # 0: any other target value, both terms
        dict(input=hinge_input),
        dict(target=np.random.default_rng(44).choice([1, -1, 0], (N, C)), margin=hinge_margin),
    ),
    *cases(
        "margin_ranking_loss",
        "margin_0.5",
        dict(
            input1=ranking_input2 + ranking_target * (0.5 - ranking_hinge), input2=ranking_input2, target=ranking_target
        ),
        dict(margin=0.5),
    ),
]


# Embedding losses. cosine_embedding_loss: for t = -1, cos - margin at least MARGIN from 0.


def cosine(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    return np.sum(x1 * x2, -1) / np.sqrt(np.sum(x1 * x1, -1) * np.sum(x2 * x2, -1))


cosine_margin = 0.2
cosine_x1, cosine_x2 = rows(
    50, 6, lambda rng: tuple(rng.standard_normal((2, 5))), lambda x1, x2: abs(cosine(x1, x2) - cosine_margin) >= MARGIN
)
COSINE = cases(
    "cosine_embedding_loss",
    "margin_0.2",
    dict(input1=cosine_x1, input2=cosine_x2),
    dict(target=np.array([1, -1, 1, -1, -1, -1]), margin=cosine_margin),
)
assert np.any(cosine(cosine_x1, cosine_x2) > cosine_margin) and np.any(cosine(cosine_x1, cosine_x2) < cosine_margin)

# pairwise_distance, one case per branch of `vector_norm`'s rule. The differences' magnitudes are a random
# permutation of 0.3, 0.6, 0.9, 1.2 per row (jittered by < 0.05, random signs): every entry at least MARGIN
# from 0 (p = 1, p < 1) and a unique largest and smallest entry at least MARGIN from the next (p = ±inf).
pairwise_x2 = normal(60, (N, C))
pairwise_x1 = pairwise_x2 + signed(61, (N, C), (1, 1)) * (
    0.3 * (1 + np.argsort(np.random.default_rng(62).random((N, C)), axis=1)) + uniform(63, (N, C), 0, 0.05)
)
PAIRWISE = [
    case
    for p in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf, -math.inf)
    for case in cases("pairwise_distance", f"p_{p}", dict(x1=pairwise_x1, x2=pairwise_x2), dict(p=p), (None,))
]
away(np.abs(pairwise_x1 - pairwise_x2), 0)
away(np.diff(np.sort(np.abs(pairwise_x1 - pairwise_x2), axis=1), axis=1), 0)


# Triplet losses: margin + d(a, p) - d_neg at least MARGIN from 0 and, with swap, d(a, n) and d(p, n) at least
# MARGIN apart (jnp.minimum's tie), for both the 2-norm and the L1 distance (whose entries must then be
# clear of 0 too).


def l1_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """A custom `distance_function` for triplet_margin_with_distance_loss (its kinks at x = y)."""
    return jnp.sum(jnp.abs(x - y), axis=-1)


def triplet_ok(anchor: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> bool:
    for distance in (lambda x, y: np.linalg.norm(x - y + 1e-6), lambda x, y: np.abs(x - y).sum()):
        d_ap, d_an, d_pn = distance(anchor, positive), distance(anchor, negative), distance(positive, negative)
        hinges = [1 + d_ap - d_an, 1 + d_ap - min(d_an, d_pn)]
        if min(abs(h) for h in hinges) < MARGIN or abs(d_an - d_pn) < MARGIN:
            return False
    differences = np.concatenate([anchor - positive, anchor - negative, positive - negative])
    return bool(np.min(np.abs(differences)) >= MARGIN)


triplet = dict(
    zip(
        ("anchor", "positive", "negative"),
        rows(70, 6, lambda rng: tuple(rng.standard_normal((3, 3))), triplet_ok),
        strict=True,
    )
)
TRIPLET = [
    *cases("triplet_margin_loss", "p_2", triplet),
    *cases("triplet_margin_loss", "p_2_swap", triplet, dict(swap=True)),
    *cases("triplet_margin_with_distance_loss", "default_distance_swap", triplet, dict(swap=True), ("mean",)),
    *cases(
        "triplet_margin_with_distance_loss",
        "l1_distance_swap",
        triplet,
        dict(distance_function=l1_distance, swap=True),
    ),
]

# linear_cross_entropy's chunked path: 5 rows in chunks of 2, so the last chunk is padded and masked. Its
# 'none' and 'mean'/'sum' reduce differently (per-row losses, or per-chunk sums then reduce_index_losses).
# Class indices hold an ignore_index; the index loss is smooth in every argument, weight included.
LCE_ROWS, LCE_FEATURES = 5, 3
CHUNKED = dict(options=LinearCrossEntropyOptions(batch_chunk_size=2))
linear = dict(
    input=normal(80, (LCE_ROWS, LCE_FEATURES)),
    linear_weight=normal(81, (C, LCE_FEATURES)),
    linear_bias=normal(82, (C,)),
)
probabilities = np.random.default_rng(83).dirichlet(np.ones(C), LCE_ROWS)
indices_weight_smoothing = dict(
    wrt=dict(**linear, weight=uniform(84, (C,), 0.5, 2)),
    fixed=dict(target=np.array([0, 3, -100, 1, 2]), label_smoothing=0.1, **CHUNKED),
)
LINEAR_CROSS_ENTROPY = [
    *cases(
        "linear_cross_entropy",
        "chunked_indices",
        linear,
        dict(target=np.array([0, 3, -100, 1, 2]), **CHUNKED),
        ("mean",),
        jit=True,
    ),
    *cases(
        "linear_cross_entropy",
        "chunked_indices_weight_smoothing",
        dict(**linear, weight=uniform(84, (C,), 0.5, 2)),
        dict(target=np.array([0, 3, -100, 1, 2]), label_smoothing=0.1, **CHUNKED),
        REDUCTIONS,
    ),
    *cases(
        "linear_cross_entropy",
        "chunked_probabilities_weight_smoothing",  # 'mean' divides by the number of rows: 'sum''s path
        dict(**linear, target=probabilities, weight=uniform(85, (C,), 0.5, 2)),
        dict(label_smoothing=0.1, **CHUNKED),
        ("none", "mean"),
    ),
    *cases(
        "linear_cross_entropy",
        "chunked_2d_weight",  # K-dimensional: (C, 2, in) weight, (N, 2) targets
        dict(
            input=linear["input"],
            linear_weight=normal(86, (C, 2, LCE_FEATURES)),
            linear_bias=normal(87, (C, 2)),
        ),
        dict(target=np.random.default_rng(88).integers(C, size=(LCE_ROWS, 2)), **CHUNKED),
        ("mean",),  # where the padded rows must be masked out ('none' slices them off)
    ),
]

CASES = [*BINARY, *REGRESSION, *DISTRIBUTIONS, *MARGINS, *COSINE, *PAIRWISE, *TRIPLET, *LINEAR_CROSS_ENTROPY]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_orders_1_and_2_fwd_and_rev(case: Case):
    with execution(case.jit):
        check_grads(case.loss, tuple(case.wrt.values()), order=2, modes=("fwd", "rev"), **TOLERANCE)


# CTC: the custom VJP returns torch's gradient w.r.t. log_probs, exp(lp) - posterior, which is the gradient
# w.r.t. the logits z of lp = log_softmax(z), not the partial derivative w.r.t. lp (see ctc_loss's docstring).
# So the loss is differentiated through a log_softmax, as CTC is used: there both agree. The targets hold a
# repeat (which needs a blank between), the blank index inside a target, an empty target and frames past an
# input length (gradient 0, and indeed unused); no target ends with the blank index, where torch's rule drops
# the final blank's share (a deliberate difference from the derivative). With zero_infinity, an infeasible
# sample's loss is 0 around the point, and so is its gradient.

CTC_FRAMES, CTC_CLASSES = 6, 5
CTC = {
    "mixed": dict(
        targets=np.array([[1, 1, 2], [3, 0, 4], [2, 2, 2], [4, 1, 3]]),
        input_lengths=np.array([6, 5, 4, 6]),
        target_lengths=np.array([3, 3, 0, 2]),
    ),
    "zero_infinity": dict(
        targets=np.array([[1, 1, 2], [3, 3, 3], [2, 4, 0]]),  # "333" needs 5 frames; it has 4
        input_lengths=np.array([6, 4, 5]),
        target_lengths=np.array([3, 3, 2]),
        zero_infinity=True,
    ),
}
CTC_CASES = {
    f"ctc_loss-{variant}-{reduction}": (variant, reduction) for variant in CTC for reduction in ("none", "mean")
}


def ctc_of_logits(variant: str, reduction: str) -> tuple[Callable[[jax.Array], jax.Array], tuple[np.ndarray]]:
    """ctc_loss of log_softmax(logits), and a point for it."""
    fixed = CTC[variant]
    logits = normal(90, (CTC_FRAMES, len(fixed["targets"]), CTC_CLASSES))
    return lambda z: F.ctc_loss(jax.nn.log_softmax(z), reduction=reduction, **fixed), (logits,)


@pytest.mark.parametrize(("variant", "reduction"), CTC_CASES.values(), ids=CTC_CASES.keys())
def test_ctc_first_order_rev(variant: str, reduction: str):
    fn, args = ctc_of_logits(variant, reduction)
    with execution(jit=True):
        check_grads(fn, args, order=1, modes=("rev",), **TOLERANCE)


def test_ctc_forward_mode_and_second_order_raise():
    """As documented: a custom VJP has no forward mode, and its backward raises when differentiated."""
    fn, args = ctc_of_logits("mixed", "mean")
    with execution(jit=True):
        with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
            check_grads(fn, args, order=1, modes=("fwd",), **TOLERANCE)
        with pytest.raises(NotImplementedError, match="ctc_loss: second-order derivatives are not supported"):
            check_grads(fn, args, order=2, modes=("rev",), **TOLERANCE)


# The tolerances above must still catch a wrong rule: a custom derivative of log(1 + x²) off by a relative 1e-5
# fails at order 1, and a rule whose own derivative is wrong (its coefficient under stop_gradient) at order 2.


def with_rule(jvp_coefficient: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    @jax.custom_jvp
    def f(x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.log1p(x * x))

    f.defjvps(lambda tangent, _, x: jnp.sum(jvp_coefficient(x) * tangent))
    return f


def exact(x: jax.Array) -> jax.Array:
    return 2 * x / (1 + x * x)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_tolerances_catch_small_errors(mode: str):
    x = (normal(100, (N, C)),)
    with execution(jit=False):
        check_grads(with_rule(exact), x, order=2, modes=(mode,), **TOLERANCE)
        with pytest.raises(AssertionError):
            check_grads(with_rule(lambda x: (1 + 1e-5) * exact(x)), x, order=1, modes=(mode,), **TOLERANCE)
        frozen = with_rule(lambda x: jax.lax.stop_gradient(exact(x)))
        check_grads(frozen, x, order=1, modes=(mode,), **TOLERANCE)
        with pytest.raises(AssertionError):
            check_grads(frozen, x, order=2, modes=(mode,), **TOLERANCE)
