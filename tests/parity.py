"""The parity harness: run one loss in torch and in jaxloss on the same data, compare values and gradients.

A `Case` names a loss, its array arguments (as float64/int64 NumPy arrays), its other options, and the
arguments to differentiate. `check_parity` runs it

* in torch (the judge): the value, and `torch.autograd.grad` of ``sum(value * cotangent)``;
* in jaxloss: the value and `jax.vjp` with the same cotangent, eagerly or inside `jax.jit`,

and asserts equal shapes, dtypes, values and gradients. Floating arrays are cast to the dtype under test;
float64 runs inside `jax.enable_x64`. Integer arrays go to torch as int64 and to jaxloss as int32 (int64
under x64), so both of the integer widths a JAX user meets are exercised.
"""

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
import torch

import jaxloss.functional as F

DTYPES = {"f32": np.float32, "f64": np.float64}
MODES = ("eager", "jit")

# Relative and absolute tolerances for values and gradients, per dtype.
TOLERANCES = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


@dataclasses.dataclass(frozen=True)
class Case:
    """One call of one loss.

    Attributes:
      loss: the function's name, the same in `jaxloss.functional` and `torch.nn.functional`.
      id: a readable test id, e.g. ``cross_entropy-4d_weights-mean``.
      arrays: array arguments by name, as NumPy arrays (floats are cast to the dtype under test).
      options: other keyword arguments, given to both libraries as they are.
      grad: names of the arguments to differentiate.
      jax_options: keyword arguments given to jaxloss only (its JAX-native extras).
      tolerance: per-dtype overrides of `TOLERANCES`, e.g. ``{np.float32: dict(rtol=1e-4, atol=1e-5)}``.
    """

    loss: str
    id: str
    arrays: dict[str, np.ndarray]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    grad: tuple[str, ...] = ()
    jax_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: dict[Any, dict[str, float]] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.id


def grid(
    loss: str,
    variants: dict[str, dict[str, Any]],
    reductions: tuple[str, ...] = ("none", "mean", "sum"),
) -> list[Case]:
    """Cases for every variant × reduction, with ids ``{loss}-{variant}-{reduction}``.

    Args:
      loss: the function's name.
      variants: maps a variant name (shape and options, e.g. ``"4d_weights"``) to the `Case` fields other than
        `loss`, `id` and the ``reduction`` option.
      reductions: the reductions to cross with every variant.
    """
    cases = []
    for (name, fields), reduction in itertools.product(variants.items(), reductions):
        fields = dict(fields)
        options = {**fields.pop("options", {}), "reduction": reduction}
        cases.append(Case(loss=loss, id=f"{loss}-{name}-{reduction}", options=options, **fields))
    return cases


def _for_torch(value: np.ndarray, requires_grad: bool) -> torch.Tensor:
    if np.issubdtype(value.dtype, np.integer):
        return torch.tensor(value, dtype=torch.int64)
    return torch.tensor(value, requires_grad=requires_grad)


def _for_jax(value: np.ndarray) -> jax.Array:
    if np.issubdtype(value.dtype, np.integer):
        return jax.numpy.asarray(value.astype(np.int64 if jax.config.jax_enable_x64 else np.int32))
    return jax.numpy.asarray(value)


def _cast(arrays: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    return {
        name: value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value
        for name, value in arrays.items()
    }


def torch_value_and_grads(case: Case, dtype, cotangent_seed: int = 0):
    """torch's value, the cotangent used, and the gradients of ``sum(value * cotangent)`` (zeros where torch
    has no graph edge)."""
    arrays = _cast(case.arrays, dtype)
    tensors = {name: _for_torch(value, name in case.grad) for name, value in arrays.items()}
    value = getattr(torch.nn.functional, case.loss)(**tensors, **case.options)
    cotangent = np.random.default_rng(cotangent_seed).uniform(0.5, 1.5, size=tuple(value.shape))
    cotangent = cotangent.astype(arrays[next(iter(case.grad))].dtype if case.grad else dtype)
    grads = {}
    if case.grad:
        inputs = [tensors[name] for name in case.grad]
        found = torch.autograd.grad(value, inputs, grad_outputs=torch.tensor(cotangent), allow_unused=True)
        grads = {
            name: np.zeros_like(arrays[name]) if g is None else g.numpy()
            for name, g in zip(case.grad, found, strict=True)
        }
    return value.detach().numpy(), cotangent, grads


def jaxloss_value_and_grads(case: Case, dtype, cotangent: np.ndarray, mode: str):
    """jaxloss's value and the vjp of `cotangent`, eagerly or under `jax.jit` (every array traced)."""
    loss_fn: Callable = getattr(F, case.loss)
    arrays = {name: _for_jax(value) for name, value in _cast(case.arrays, dtype).items()}

    def value_and_grads(arrays, cotangent):
        def loss_of(differentiated):
            return loss_fn(**{**arrays, **differentiated}, **case.options, **case.jax_options)

        value, vjp = jax.vjp(loss_of, {name: arrays[name] for name in case.grad})
        return value, vjp(cotangent)[0]

    if mode == "jit":
        value_and_grads = jax.jit(value_and_grads)
    value, grads = value_and_grads(arrays, jax.numpy.asarray(cotangent))
    return np.asarray(value), {name: np.asarray(g) for name, g in grads.items()}


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, tolerance: dict[str, float]):
    """Equal shape and dtype, values within `tolerance`, NaN where torch has NaN and infinities matching."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != torch's {expected.dtype}"
    np.testing.assert_allclose(actual, expected, equal_nan=True, err_msg=what, **tolerance)


def check_parity(case: Case, dtype_name: str, mode: str) -> None:
    """Asserts that jaxloss matches torch on `case` for values and gradients."""
    dtype = DTYPES[dtype_name]
    tolerance = case.tolerance.get(dtype, TOLERANCES[dtype])
    expected, cotangent, expected_grads = torch_value_and_grads(case, dtype)
    with jax.enable_x64(dtype == np.float64):
        value, grads = jaxloss_value_and_grads(case, dtype, cotangent, mode)
    assert_close(value, expected, f"{case} value", tolerance)
    for name in case.grad:
        assert_close(grads[name], expected_grads[name], f"{case} d/d{name}", tolerance)


LOW_PRECISION = {"f16": np.float16, "bf16": jax.numpy.bfloat16}


def check_low_precision(case: Case, dtype_name: str) -> None:
    """Asserts that a 16-bit call returns 16-bit values and gradients close to torch's float32 answer on the
    same (rounded) inputs: jaxloss computes 16-bit losses in float32 internally."""
    dtype = LOW_PRECISION[dtype_name]
    rounded = {
        name: value.astype(dtype).astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
        for name, value in case.arrays.items()
    }
    as_float32 = dataclasses.replace(case, arrays=rounded)
    expected, cotangent, expected_grads = torch_value_and_grads(as_float32, np.float32)
    value, grads = jaxloss_value_and_grads(case, dtype, cotangent.astype(dtype), "jit")
    tolerance = dict(rtol=2e-2, atol=2e-2)
    assert value.dtype == dtype, f"{case} value dtype {value.dtype}, expected {dtype}"
    assert_close(value.astype(np.float32), expected, f"{case} value", tolerance)
    for name in case.grad:
        assert grads[name].dtype == dtype, f"{case} d/d{name} dtype {grads[name].dtype}, expected {dtype}"
        assert_close(grads[name].astype(np.float32), expected_grads[name], f"{case} d/d{name}", tolerance)


def check_raises(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    """Asserts that `call` raises `error` matching `match`, both eagerly and when traced by `jax.jit` (static
    checks run while tracing)."""
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(error, match=match):
        jax.jit(call)()
