"""Real-number options (margins, ε, β, δ) are data: traced under `jit`, batched under `vmap`, one compilation for
every Python value, and held by the `nn` classes as pytree leaves. Values and gradients match torch's for the same
Python value. (Each option's derivative is checked by finite differences in its family's test file.)"""

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from parity import DTYPES

import jaxloss.functional as F
from jaxloss import nn
from jaxloss.testing import assert_parity

rng = np.random.default_rng(0)


def normal(*shape):
    return rng.standard_normal(shape)


def signs(*shape):
    return rng.choice([-1.0, 1.0], shape)


@dataclasses.dataclass(frozen=True)
class OptionCase:
    """A loss, its arguments (floating ones differentiated), and the real-number option that varies."""

    loss: str
    option: str
    values: tuple[float, ...]
    arrays: dict[str, np.ndarray]
    grad: tuple[str, ...]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.loss}-{self.option}"


CLASS_INDICES = np.array([0, 4, 2, 1])
CASES = [
    OptionCase("smooth_l1_loss", "beta", (0.5, 1.0, 2.0), dict(input=normal(4, 3), target=normal(4, 3)), ("input",)),
    OptionCase("huber_loss", "delta", (0.5, 1.0, 2.0), dict(input=normal(4, 3), target=normal(4, 3)), ("input",)),
    OptionCase(
        "cross_entropy",
        "label_smoothing",
        (0.05, 0.1, 0.3),
        dict(input=normal(4, 5), target=CLASS_INDICES),
        ("input",),
    ),
    OptionCase(
        "cross_entropy",
        "label_smoothing",
        (0.05, 0.1, 0.3),
        dict(input=normal(4, 5), target=rng.dirichlet(np.ones(5), 4)),
        ("input", "target"),
    ),
    OptionCase(
        "poisson_nll_loss",
        "eps",
        (1e-8, 0.1, 0.5),
        dict(input=rng.uniform(0.1, 2, (4, 3)), target=rng.poisson(2, (4, 3)).astype(float)),
        ("input", "target"),
        dict(log_input=False),
    ),
    OptionCase(
        "gaussian_nll_loss",
        "eps",
        (1e-6, 0.1, 0.5),
        dict(input=normal(4, 3), target=normal(4, 3), var=rng.uniform(0, 1, (4, 3))),
        ("input", "target", "var"),
    ),
    OptionCase(
        "multi_margin_loss", "margin", (0.5, 1.0, 2.0), dict(input=normal(4, 5), target=CLASS_INDICES), ("input",)
    ),
    OptionCase(
        "margin_ranking_loss",
        "margin",
        (-0.5, 0.25, 1.0),
        dict(input1=normal(6), input2=normal(6), target=signs(6)),
        ("input1", "input2"),
    ),
    OptionCase("hinge_embedding_loss", "margin", (0.5, 1.0, 2.0), dict(input=normal(6), target=signs(6)), ("input",)),
    OptionCase(
        "cosine_embedding_loss",
        "margin",
        (-0.5, 0.0, 0.25),
        dict(input1=normal(4, 3), input2=normal(4, 3), target=signs(4)),
        ("input1", "input2"),
    ),
    OptionCase("pairwise_distance", "eps", (0.0, 1e-6, 0.1), dict(x1=normal(4, 3), x2=normal(4, 3)), ("x1", "x2")),
    OptionCase(
        "triplet_margin_loss",
        "margin",
        (0.5, 1.0, 2.0),
        dict(anchor=normal(4, 3), positive=normal(4, 3), negative=normal(4, 3)),
        ("anchor", "positive", "negative"),
    ),
    OptionCase(
        "triplet_margin_loss",
        "eps",
        (0.0, 1e-6, 0.1),
        dict(anchor=normal(4, 3), positive=normal(4, 3), negative=normal(4, 3)),
        ("anchor", "positive", "negative"),
        dict(margin=2.0),
    ),
    OptionCase(
        "triplet_margin_with_distance_loss",
        "margin",
        (0.5, 1.0, 2.0),
        dict(anchor=normal(4, 3), positive=normal(4, 3), negative=normal(4, 3)),
        ("anchor", "positive", "negative"),
    ),
    OptionCase(
        "linear_cross_entropy",
        "label_smoothing",
        (0.05, 0.1, 0.3),
        dict(input=normal(4, 3), linear_weight=normal(5, 3), target=CLASS_INDICES),
        ("input", "linear_weight"),
    ),
]


def jaxloss_loss(case: OptionCase) -> Callable[..., jax.Array]:
    """The loss as a function of the differentiated arrays, the other arrays and the option's value."""

    def loss(differentiated, others, value):
        return getattr(F, case.loss)(**differentiated, **others, **case.options, **{case.option: value})

    return loss


def cast(case: OptionCase, dtype) -> dict[str, np.ndarray]:
    """The case's arrays, the floating ones in `dtype`."""
    return {
        name: array.astype(dtype) if np.issubdtype(array.dtype, np.floating) else array
        for name, array in case.arrays.items()
    }


def split(case: OptionCase, dtype) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The differentiated arrays and the others, as JAX arrays."""
    arrays = {name: jnp.asarray(array) for name, array in cast(case, dtype).items()}
    return {name: arrays.pop(name) for name in case.grad}, arrays


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_traced_option_matches_torch(case, dtype):
    """The option a 0-d array that the caller's `jit` traces: values and gradients as torch's for the same value
    as a Python float. One `jit` for all the values, which compiles once ('eager' calls it as it is)."""

    @jax.jit
    def jaxloss_fn(**arrays):
        return getattr(F, case.loss)(**arrays, **case.options)

    def torch_fn(**tensors):
        option = float(tensors.pop(case.option))
        return getattr(torch.nn.functional, case.loss)(**tensors, **case.options, **{case.option: option})

    for value in case.values:
        arrays = {**case.arrays, case.option: np.array(value)}
        assert_parity(jaxloss_fn, torch_fn, arrays, grad=case.grad, dtypes=(dtype,), modes=("eager",))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_batched_option_equals_one_call_per_value(case):
    differentiated, others = split(case, np.float32)
    loss = jaxloss_loss(case)
    batched = jax.vmap(loss, in_axes=(None, None, 0))(differentiated, others, jnp.array(case.values))
    for row, value in zip(batched, case.values, strict=True):
        np.testing.assert_allclose(row, loss(differentiated, others, value), rtol=1e-6, atol=1e-7)


@contextlib.contextmanager
def counting_compilations(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The XLA compilations while active, as JAX logs them (`jax.log_compiles`)."""
    records: list[logging.LogRecord] = []
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        yield records
        records.extend(r for r in caplog.records if r.getMessage().startswith("Compiling"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_one_compilation_serves_every_python_value(case, caplog):
    differentiated, others = split(case, np.float32)
    loss = jaxloss_loss(case)
    first, *others_values = case.values
    loss(differentiated, others, first)  # compiles the loss, and the eager ops of its wrapper
    # ints, floats and NumPy scalars of any precision, new values: all one weakly typed Python float
    values = [int(first) if first == int(first) else first, np.float32(first), np.float64(first), *others_values]
    with counting_compilations(caplog) as compilations:
        for value in values:
            loss(differentiated, others, value)
    assert [r.getMessage() for r in compilations] == []


# ------------------------------------------------------------------------------------------------------------
# Bad values: named, with what to pass.


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: F.huber_loss(jnp.ones(3), jnp.zeros(3), delta="1"), TypeError, "`delta` must be a real number"),
        (lambda: F.smooth_l1_loss(jnp.ones(3), jnp.zeros(3), beta=True), TypeError, "`beta` must be a real number"),
        (
            lambda: F.margin_ranking_loss(jnp.ones(3), jnp.zeros(3), jnp.ones(3), margin=jnp.ones(3)),
            TypeError,
            r"`margin` must be a real scalar; got an array of shape \(3,\)",
        ),
        (
            lambda: F.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 1]), label_smoothing=jnp.array(0.5j)),
            TypeError,
            "`label_smoothing` must be a real scalar",
        ),
        (lambda: F.huber_loss(jnp.ones(3), jnp.zeros(3), delta=jnp.array(-1.0)), ValueError, "`delta` must be"),
        (lambda: F.smooth_l1_loss(jnp.ones(3), jnp.zeros(3), beta=np.float32(-1)), ValueError, "`beta` must be"),
    ],
)
def test_bad_option_values_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------------------------------------
# The nn classes hold these options as pytree leaves.

x, y = jnp.asarray(normal(4, 3), jnp.float32), jnp.asarray(normal(4, 3), jnp.float32)


def test_class_options_are_leaves_and_ints_are_stored_as_floats():
    loss = nn.HuberLoss(delta=2)
    assert jax.tree_util.tree_leaves(loss) == [2.0] and isinstance(loss.delta, float)
    assert nn.HuberLoss(delta=np.float32(2)) == loss == nn.HuberLoss(delta=2.0)
    assert hash(nn.HuberLoss(delta=2)) == hash(loss)
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(nn.TripletMarginLoss())]
    assert paths == [".margin", ".eps"]  # `p` changes the computation: static


def test_instance_passed_to_jit_with_a_new_option_value_does_not_recompile(caplog):
    apply = jax.jit(lambda loss, x, y: loss(x, y))
    apply(nn.HuberLoss(delta=0.5), x, y)
    with counting_compilations(caplog) as compilations:
        results = [apply(nn.HuberLoss(delta=delta), x, y) for delta in (1.0, 1.5, 2.0)]
    assert compilations == []
    for delta, result in zip((1.0, 1.5, 2.0), results, strict=True):
        np.testing.assert_allclose(result, F.huber_loss(x, y, delta=delta))


def test_instances_batch_and_differentiate_through_their_options():
    deltas = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(lambda loss: loss(x, y))(nn.HuberLoss(delta=deltas))
    np.testing.assert_allclose(batched, [F.huber_loss(x, y, delta=float(d)) for d in deltas], rtol=1e-6)
    grads = jax.grad(lambda loss: loss(x, y))(nn.HuberLoss(delta=0.5))
    expected = jax.grad(lambda delta: F.huber_loss(x, y, delta=delta))(0.5)
    np.testing.assert_allclose(grads.delta, expected, rtol=1e-6)
