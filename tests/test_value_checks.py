"""Failed value checks under `jit`/`vmap`: a NaN loss comes with NaN derivatives (`_checks.nan_derivatives_if`).

Eagerly a failed check raises (the family test files and test_checkify.py cover that). Under `jax.jit` or
`jax.vmap` it cannot, and the loss is NaN; these tests check that its derivatives are NaN too, so that a
gradient-based guard (`optax.apply_if_finite`, a loss scaler) skips the update:

* reverse mode, 'mean' and 'sum': every element of the gradient of every differentiable argument is NaN,
  including those the loss ignores (ignored targets, padding, `weight`);
* reverse mode, 'none': the same, even after the caller masks the NaN elements out of its sum (jaxloss poisons
  every element, not only those behind the NaN losses);
* forward mode: the tangent of every NaN loss element is NaN (of the reduced loss for 'mean' and 'sum'), and
  so is the Hessian unless it is identically zero; CTC has no forward mode;
* under `jax.vmap`, per instance: the instance with bad data gets NaN, the others their ordinary gradients;
* forward values are unchanged: with 'none' the elements whose data is valid keep their values.

Each `BadCase` changes valid data in one place, for every value check of the package.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.functional as F
from jaxloss.nn import LinearCrossEntropyOptions

rng = np.random.default_rng(0)
REDUCTIONS = ("none", "mean", "sum")


@dataclasses.dataclass(frozen=True)
class BadCase:
    """One loss call with valid data, and the change that makes one value check fail.

    Attributes:
      id: test id.
      loss: the name in `jaxloss.functional`.
      diff: the differentiable (floating) arguments by name, valid.
      fixed: the other array arguments by name (targets, lengths), valid.
      bad: the arguments (from `diff` or `fixed`) that make the check fail, replacing the valid ones.
      nan: with ``reduction='none'``, where the loss is NaN.
      options: static keyword options.
    """

    id: str
    loss: str
    diff: dict[str, np.ndarray]
    fixed: dict[str, np.ndarray]
    bad: dict[str, np.ndarray]
    nan: np.ndarray
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.id

    def arrays(self, bad: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``(diff, fixed)``, valid or with `bad` applied."""
        if not bad:
            return self.diff, self.fixed
        return (
            {name: self.bad.get(name, value) for name, value in self.diff.items()},
            {name: self.bad.get(name, value) for name, value in self.fixed.items()},
        )


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def ints(*values: Any) -> np.ndarray:
    return np.array(values, np.int32)


def floats(*values: Any) -> np.ndarray:
    return np.array(values, np.float32)


def ctc_case(name: str, **bad: np.ndarray) -> BadCase:
    """ctc_loss on 2 samples (T = 5, C = 3) with padded targets; sample 1 gets the bad `bad` data."""
    log_probs = np.asarray(jax.nn.log_softmax(normal(5, 2, 3)))
    fixed = dict(targets=ints([1, 2], [1, 1]), input_lengths=ints(5, 4), target_lengths=ints(2, 1))
    return BadCase(f"ctc_loss-{name}", "ctc_loss", dict(log_probs=log_probs), fixed, bad, np.array([False, True]))


# Ignored targets (-100) sit next to the bad one: their gradient, 0 otherwise, must turn NaN as well.
CASES = [
    BadCase(
        "cross_entropy-index_too_large",
        "cross_entropy",
        dict(input=normal(4, 3), weight=positive(3)),
        dict(target=ints(0, 1, -100, 2)),
        dict(target=ints(0, 7, -100, 2)),
        np.array([False, True, False, False]),
        dict(label_smoothing=0.1),
    ),
    BadCase(
        "cross_entropy-negative_index_kdim",
        "cross_entropy",
        dict(input=normal(2, 3, 2)),
        dict(target=ints([0, 1], [-100, 2])),
        dict(target=ints([0, -1], [-100, 2])),
        np.array([[False, True], [False, False]]),
    ),
    BadCase(
        "nll_loss-index_too_large",
        "nll_loss",
        dict(input=np.asarray(jax.nn.log_softmax(normal(4, 3))), weight=positive(3)),
        dict(target=ints(0, 1, -100, 2)),
        dict(target=ints(0, 3, -100, 2)),
        np.array([False, True, False, False]),
    ),
    BadCase(
        "binary_cross_entropy-input_above_1",
        "binary_cross_entropy",
        dict(input=floats(0.2, 0.5, 0.7, 0.4), target=floats(1, 0, 0.5, 1), weight=positive(4)),
        {},
        dict(input=floats(0.2, 1.5, 0.7, 0.4)),
        np.array([False, True, False, False]),
    ),
    BadCase(
        "binary_cross_entropy-nan_input",
        "binary_cross_entropy",
        dict(input=floats(0.2, 0.5, 0.7, 0.4), target=floats(1, 0, 0.5, 1)),
        {},
        dict(input=floats(0.2, 0.5, np.nan, 0.4)),
        np.array([False, False, True, False]),
    ),
    BadCase(
        "binary_cross_entropy-target_negative",
        "binary_cross_entropy",
        dict(input=floats(0.2, 0.5, 0.7, 0.4), target=floats(1, 0, 0.5, 1), weight=positive(4)),
        {},
        dict(target=floats(1, 0, -0.5, 1)),
        np.array([False, False, True, False]),
    ),
    BadCase(
        "gaussian_nll_loss-negative_var",
        "gaussian_nll_loss",
        dict(input=normal(4), target=normal(4), var=floats(1, 1.5, 2, 0.5)),
        {},
        dict(var=floats(1, -1, 2, 0.5)),
        np.array([False, True, False, False]),
        dict(full=True),
    ),
    BadCase(
        "gaussian_nll_loss-negative_row_var",
        "gaussian_nll_loss",
        dict(input=normal(2, 3), target=normal(2, 3), var=floats(1, 1.5)),
        {},
        dict(var=floats(1, -1)),
        np.array([[False] * 3, [True] * 3]),
    ),
    BadCase(
        "multi_margin_loss-index_too_large",
        "multi_margin_loss",
        dict(input=normal(3, 4), weight=positive(4)),
        dict(target=ints(0, 1, 2)),
        dict(target=ints(0, 4, 2)),
        np.array([False, True, False]),
        dict(p=2, margin=0.5),
    ),
    BadCase(
        "multi_margin_loss-negative_index",
        "multi_margin_loss",
        dict(input=normal(3, 4)),
        dict(target=ints(0, 1, 2)),
        dict(target=ints(-1, 1, 2)),
        np.array([True, False, False]),
    ),
    BadCase(
        "multilabel_margin_loss-index_too_large",
        "multilabel_margin_loss",
        dict(input=normal(3, 4)),
        dict(target=ints([0, 1, -1, 0], [3, -1, 0, 0], [2, 0, 1, -1])),
        dict(target=ints([0, 1, -1, 0], [4, -1, 0, 0], [2, 0, 1, -1])),
        np.array([False, True, False]),
    ),
    BadCase(
        "multilabel_margin_loss-bad_after_end",  # torch checks entries after the first -1 too
        "multilabel_margin_loss",
        dict(input=normal(3, 4)),
        dict(target=ints([0, 1, -1, 0], [3, -1, 0, 0], [2, 0, 1, -1])),
        dict(target=ints([0, 1, -1, -2], [3, -1, 0, 0], [2, 0, 1, -1])),
        np.array([True, False, False]),
    ),
    *(
        BadCase(
            f"linear_cross_entropy-{path}",
            "linear_cross_entropy",
            dict(input=normal(5, 4), linear_weight=normal(3, 4), linear_bias=normal(3), weight=positive(3)),
            dict(target=ints(0, 1, -100, 2, 1)),
            dict(target=ints(0, 1, -100, 3, 1)),
            np.array([False, False, False, True, False]),
            dict(options=options),
        )
        for path, options in [("whole", None), ("chunked", LinearCrossEntropyOptions(batch_chunk_size=2))]
    ),
    ctc_case("label_too_large", targets=ints([1, 2], [3, 1])),
    ctc_case("negative_target_length", target_lengths=ints(2, -1)),
    ctc_case("target_length_above_width", target_lengths=ints(2, 3)),
    ctc_case("negative_input_length", input_lengths=ints(5, -1)),
    ctc_case("input_length_above_frames", input_lengths=ints(5, 6)),
    BadCase(
        "ctc_loss-concatenated_length_mismatch",  # every sample's loss is NaN
        "ctc_loss",
        dict(log_probs=np.asarray(jax.nn.log_softmax(normal(5, 2, 3)))),
        dict(targets=ints(1, 2, 1), input_lengths=ints(5, 4), target_lengths=ints(2, 1)),
        dict(target_lengths=ints(2, 2)),
        np.array([True, True]),
    ),
]
FORWARD_MODE_CASES = [case for case in CASES if case.loss != "ctc_loss"]  # CTC's custom_vjp has no forward mode


def loss_fn(case: BadCase, reduction: str) -> Callable[[dict[str, jax.Array], dict[str, jax.Array]], jax.Array]:
    """``(diff, fixed) -> loss``, the loss as it comes."""

    def fn(diff: dict[str, jax.Array], fixed: dict[str, jax.Array]) -> jax.Array:
        return getattr(F, case.loss)(**diff, **fixed, reduction=reduction, **case.options)

    return fn


def objective(case: BadCase, reduction: str) -> Callable[[dict[str, jax.Array], dict[str, jax.Array]], jax.Array]:
    """``(diff, fixed) -> scalar``: the loss, or for 'none' the sum of its finite elements (a caller that masks
    the NaN out, and then sees a finite, plausible number)."""
    fn = loss_fn(case, reduction)

    def scalar(diff: dict[str, jax.Array], fixed: dict[str, jax.Array]) -> jax.Array:
        loss = fn(diff, fixed)
        return jnp.sum(jnp.where(jnp.isnan(loss), 0, loss)) if reduction == "none" else loss

    return scalar


def assert_all_nan(tree: Any, what: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        assert np.all(np.isnan(leaf)), f"{what}{jax.tree_util.keystr(path)} is not all NaN: {leaf}"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_jit_gradient_is_nan(case, reduction):
    diff, fixed = case.arrays(bad=True)
    value, grads = jax.jit(jax.value_and_grad(objective(case, reduction)))(diff, fixed)
    assert set(grads) == set(case.diff)
    assert_all_nan(grads, "gradient ")
    if reduction == "none":
        assert np.isfinite(value)  # the masked sum looks plausible; its gradient tells
    else:
        assert np.isnan(value)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_values_are_unchanged(case):
    """With 'none', the loss is NaN where the data is bad and, elsewhere, what it is with valid data."""
    jitted = jax.jit(loss_fn(case, "none"))
    bad, good = jitted(*case.arrays(bad=True)), jitted(*case.arrays(bad=False))
    np.testing.assert_array_equal(np.isnan(bad), case.nan)
    np.testing.assert_array_equal(np.asarray(bad)[~case.nan], np.asarray(good)[~case.nan])
    assert np.all(np.isfinite(good))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_vmap_gradient_is_nan_per_instance(case, reduction):
    """Instance 0 holds valid data, instance 1 bad data: only instance 1's loss and gradients are NaN."""
    (good_diff, good_fixed), (bad_diff, bad_fixed) = case.arrays(bad=False), case.arrays(bad=True)
    stack = lambda good, bad: jax.tree.map(lambda *pair: np.stack(pair), good, bad)  # noqa: E731
    value_and_grad = jax.value_and_grad(objective(case, reduction))
    values, grads = jax.vmap(value_and_grad)(stack(good_diff, bad_diff), stack(good_fixed, bad_fixed))
    assert_all_nan(jax.tree.map(lambda g: g[1], grads), "instance 1's gradient ")
    expected_value, expected_grads = value_and_grad(good_diff, good_fixed)  # eagerly: the data is valid
    for name, grad in grads.items():
        np.testing.assert_allclose(grad[0], expected_grads[name], rtol=1e-6, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(values[0], expected_value, rtol=1e-6)
    assert np.isfinite(values[1]) if reduction == "none" else np.isnan(values[1])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", FORWARD_MODE_CASES, ids=str)
def test_jvp_is_nan(case, reduction):
    """Forward mode: NaN tangents at least where the loss is NaN (everywhere once reduced)."""
    diff, fixed = case.arrays(bad=True)
    tangents = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), diff)
    fn = loss_fn(case, reduction)
    value, tangent = jax.jit(lambda d, t: jax.jvp(lambda d: fn(d, fixed), (d,), (t,)))(diff, tangents)
    np.testing.assert_array_equal(np.isnan(value), case.nan if reduction == "none" else True)
    assert np.all(np.isnan(tangent)[np.isnan(value)])


# Piecewise linear in all their differentiable arguments: their Hessian is a symbolic zero in JAX, which no
# factor reaches and which stays 0 (see `_checks.nan_derivatives_if`).
PIECEWISE_LINEAR = (
    "multi_margin_loss-negative_index",
    "multilabel_margin_loss-index_too_large",
    "multilabel_margin_loss-bad_after_end",
)


@pytest.mark.parametrize("case", [c for c in FORWARD_MODE_CASES if c.id not in PIECEWISE_LINEAR], ids=str)
def test_hessian_is_nan(case):
    diff, fixed = case.arrays(bad=True)
    assert_all_nan(jax.jit(jax.hessian(objective(case, "sum")))(diff, fixed), "Hessian ")


def test_ctc_forward_mode_still_raises():
    """The NaN derivatives come from a custom_jvp outside CTC's custom_vjp, which keeps refusing forward mode."""
    case = CASES[[c.loss for c in CASES].index("ctc_loss")]
    diff, fixed = case.arrays(bad=True)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jit(lambda d: jax.jvp(lambda d: loss_fn(case, "sum")(d, fixed), (d,), (d,)))(diff)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_eager_gradient_still_raises(case):
    with pytest.raises(ValueError, match=f"^{case.loss}: "):
        jax.grad(objective(case, "sum"))(*case.arrays(bad=True))
