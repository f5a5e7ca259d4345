"""Argument checks shared by the losses.

Two kinds of check, as in torch:

* **Static checks** look at shapes, dtypes and options. They run while a loss is traced, so they raise
  `TypeError`/`ValueError` eagerly and under `jax.jit` alike.
* **Value checks** look at the data (class indices in range, probabilities in [0, 1], ...). A loss computes
  them as boolean flags first, passes its differentiable operands through `nan_derivatives_if` (so that the
  derivatives are NaN when a check failed), and puts NaN in the affected elements of its result
  (`nan_where`). `raise_failed` then raises a `ValueError` when the flags are known (eager calls, including
  eager `jax.grad`); under `jit` or `vmap` they are not known, and the NaN loss and NaN gradients are what the
  caller sees: never plausible-looking numbers; inside `jaxloss.checkify` they become
  `jax.experimental.checkify` errors instead.
"""

import contextlib
import contextvars
import functools
import operator
import sys
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, TypeAlias, get_args, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import ArrayLike, DTypeLike

from jaxloss._typing import Reduction

REDUCTIONS = get_args(Reduction)

Failures: TypeAlias = dict[str, jax.Array]
"""Value checks' flags: a message such as "`input` must lie in [0, 1]" to a boolean scalar, True if it failed."""


def check_reduction(loss: str, reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    """Raises `ValueError` unless `reduction` is one of `allowed`."""
    if not isinstance(reduction, str) or reduction not in allowed:
        expected = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{loss}: `reduction` must be one of {expected}; got {reduction!r}.")


def check_option(loss: str, name: str, value: object, condition: bool, expected: str) -> None:
    """Raises `ValueError` naming the option `name` when `condition` does not hold."""
    if not condition:
        raise ValueError(f"{loss}: `{name}` must be {expected}; got {value!r}.")


def int_option(loss: str, name: str, value: Any) -> int:
    """Returns the integer option `value` as a Python int, or raises `TypeError`."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{loss}: `{name}` must be an int; got {value!r}.") from None


def float_option(loss: str, name: str, value: Any) -> float:
    """Returns the scalar option `value` as a Python float, or raises `TypeError`."""
    if isinstance(value, bool):
        raise TypeError(f"{loss}: `{name}` must be a real number; got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError) as error:
        raise TypeError(
            f"{loss}: `{name}` must be a real number known before tracing (an option, not a traced "
            f"array); got {type(value).__name__}."
        ) from error


def floating_dtype(
    loss: str, *, integers_to_float32: bool = False, booleans: Collection[str] = (), **arrays: ArrayLike | None
) -> np.dtype:
    """Returns the dtype that floating-point `arrays` promote to, as torch promotes them.

    Args:
      loss: the loss's name, for error messages.
      integers_to_float32: torch accepts integer operands in some losses; when True, so does this check, and
        integers take the floating operands' dtype (torch's default, float32, when all are integers).
      booleans: with `integers_to_float32`, the names of the operands that may also be boolean, promoted as
        integers are (torch accepts a boolean operand where it only multiplies it, not where it subtracts or
        negates it).
      **arrays: the operands by argument name; `None` values are skipped.

    Raises:
      TypeError: an operand is complex, boolean (unless named in `booleans`), or an integer array (unless
        `integers_to_float32`).
    """
    dtypes = []
    for name, array in arrays.items():
        if array is None:
            continue
        dtype = jnp.result_type(array)
        if jnp.issubdtype(dtype, jnp.floating):
            dtypes.append(dtype)
        elif not (
            integers_to_float32 and (jnp.issubdtype(dtype, jnp.integer) or (dtype == jnp.bool_ and name in booleans))
        ):
            raise TypeError(f"{loss}: `{name}` must be a floating-point array; got dtype {dtype}.")
    return np.dtype(jnp.result_type(*dtypes)) if dtypes else np.dtype(jnp.float32)


def computation_dtype(dtype: DTypeLike) -> np.dtype:
    """float32 for 16-bit floats (so sums and logs keep their precision), `dtype` otherwise."""
    return np.dtype(jnp.float32) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)


def cast_for_computation(dtype: DTypeLike, *arrays: ArrayLike) -> tuple[jax.Array, ...]:
    """`arrays` as arrays of `computation_dtype(dtype)`."""
    compute = computation_dtype(dtype)
    return tuple(jnp.asarray(a).astype(compute) for a in arrays)


def cast_optional_for_computation(dtype: DTypeLike, array: ArrayLike | None) -> jax.Array | None:
    """An optional operand (None passes through) as an array of `computation_dtype(dtype)`."""
    return None if array is None else cast_for_computation(dtype, array)[0]


def check_index_dtype(loss: str, name: str, array: ArrayLike) -> None:
    """Raises `TypeError` unless `array` holds integers (int32 and int64 are both fine, unlike torch)."""
    dtype = jnp.result_type(array)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{loss}: `{name}` must be an integer array of class indices; got dtype {dtype}.")


def check_same_dtype(loss: str, first: str, first_array: ArrayLike, second: str, second_array: ArrayLike) -> None:
    """Raises `TypeError` unless the two named arrays have the same dtype (torch kernels that do not promote)."""
    first_dtype, second_dtype = jnp.result_type(first_array), jnp.result_type(second_array)
    if first_dtype != second_dtype:
        raise TypeError(f"{loss}: `{second}` must have the dtype of `{first}` ({first_dtype}); got {second_dtype}.")


def check_same_shape(
    loss: str, first: str, first_shape: Sequence[int], second: str, second_shape: Sequence[int]
) -> None:
    """Raises `ValueError` unless the two named shapes are equal."""
    if tuple(first_shape) != tuple(second_shape):
        raise ValueError(
            f"{loss}: `{second}` must have the same shape as `{first}` {tuple(first_shape)}; got {tuple(second_shape)}."
        )


def broadcast_shape(loss: str, **shapes: Sequence[int]) -> tuple[int, ...]:
    """Returns the broadcast of the named shapes, or raises `ValueError` naming them."""
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes.values())))
    except ValueError:
        described = ", ".join(f"`{name}` {tuple(shape)}" for name, shape in shapes.items())
        raise ValueError(f"{loss}: shapes do not broadcast together: {described}.") from None


def check_broadcasts_to(loss: str, name: str, shape: Sequence[int], to_name: str, to_shape: Sequence[int]) -> None:
    """Raises `ValueError` unless `shape` broadcasts to `to_shape` without enlarging it.

    torch's rule for operands applied in place (``out.mul_(weight)``): broadcasting may repeat them, but the
    result must keep the shape of `out`.
    """
    try:
        fits = np.broadcast_shapes(tuple(shape), tuple(to_shape)) == tuple(to_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{loss}: `{name}` must broadcast to the shape {tuple(to_shape)} of `{to_name}` without enlarging "
            f"it; got {tuple(shape)}."
        )


def warn_if_target_broadcasts(loss: str, input_shape: Sequence[int], target_shape: Sequence[int]) -> None:
    """torch's UserWarning when a regression target's shape differs from the input's."""
    if tuple(input_shape) != tuple(target_shape):
        warnings.warn(
            f"{loss}: using a target size ({tuple(target_shape)}) that is different to the input size "
            f"({tuple(input_shape)}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )


def _caller_stacklevel() -> int:
    """The `warnings.warn` stacklevel, seen from its caller, of the first frame outside jaxloss and jax, so
    that a warning raised while tracing points at the user's line."""
    internal = ("jax", "jaxlib", "jaxloss")
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in internal:
        frame, level = frame.f_back, level + 1
    return level


def concrete_value(value: ArrayLike) -> np.ndarray | None:
    """The value of `value` if it is known now, else None.

    Known: ordinary arrays, and the primal values that eager `jax.grad`/`jax.vjp` carry. Unknown: values being
    traced by `jit`, `vmap` or `scan`.
    """
    if isinstance(value, jax.core.Tracer):
        value = value.to_concrete_value()
        if value is None:
            return None
    return np.asarray(value)


_CHECKIFY_VALUE_CHECKS = contextvars.ContextVar("jaxloss_checkify_value_checks", default=False)


@contextlib.contextmanager
def checkify_value_checks() -> Iterator[None]:
    """While active, `raise_failed` turns the value checks it cannot evaluate into `checkify.check`s."""
    token = _CHECKIFY_VALUE_CHECKS.set(True)
    try:
        yield
    finally:
        _CHECKIFY_VALUE_CHECKS.reset(token)


def raise_failed(loss: str, result: jax.Array, failures: Mapping[str, jax.Array]) -> jax.Array:
    """Returns `result`, after raising `ValueError` for the first known-true flag in `failures`.

    Flags that are not known (under `jit`/`vmap`) become `checkify.check`s inside `checkify_value_checks`, and
    are otherwise left to the NaN already in `result` and in its derivatives (`nan_derivatives_if`).

    Args:
      loss: the loss's name, for the message.
      result: the loss value(s), already NaN where a check failed, and NaN-differentiated if any failed.
      failures: maps a message such as "`input` must lie in [0, 1]" to a boolean scalar that is True when
        the check failed somewhere.

    Returns:
      `result`, unchanged.
    """
    for message, failed in failures.items():
        known = concrete_value(failed)
        if known is None:
            if _CHECKIFY_VALUE_CHECKS.get():
                escaped = f"{loss}: {message}.".replace("{", "{{").replace("}", "}}")  # checkify formats it
                checkify.check(jnp.logical_not(failed), escaped)
        elif bool(known):
            raise ValueError(f"{loss}: {message}.")
    return result


@jax.custom_jvp
def _nan_derivatives_where(invalid: jax.Array, operand: jax.Array) -> jax.Array:
    """`operand`, with NaN derivatives wherever `invalid` (which broadcasts to `operand`'s shape) is True."""
    return operand


@_nan_derivatives_where.defjvp
def _nan_derivatives_where_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    invalid, operand = primals
    # A product with 1 or NaN, not `where(invalid, nan, tangent)`: the rule stays linear in the tangent, so
    # reverse mode transposes it into the same product with the cotangent. The factor 1 is exact (valid data
    # keeps its derivatives bit for bit), and NaN · 0 is NaN: an element turns NaN even where its derivative
    # is otherwise 0 (ignored targets, masked elements, a sample's padding).
    factor = jnp.where(invalid, jnp.nan, 1).astype(tangents[1].dtype)
    return operand, tangents[1] * factor


def nan_where(invalid: jax.Array, values: jax.Array) -> jax.Array:
    """`values` with NaN wherever `invalid` is True, and NaN tangents there in forward mode.

    (The select alone would give those elements a tangent of 0. In reverse mode the select stops the cotangent
    of those elements whatever it is: `nan_derivatives_if` on the operands is what makes gradients NaN.)
    """
    return _nan_derivatives_where(invalid, jnp.where(invalid, jnp.nan, values))


def any_failed(failures: Mapping[str, jax.Array]) -> jax.Array:
    """A boolean scalar: True if any of the value checks in `failures` failed (False when there are none)."""
    return functools.reduce(jnp.logical_or, failures.values(), jnp.zeros((), bool))


@overload
def nan_derivatives_if(failed: jax.Array, operand: jax.Array) -> jax.Array: ...


@overload
def nan_derivatives_if(failed: jax.Array, operand: None) -> None: ...


def nan_derivatives_if(failed: jax.Array, operand: jax.Array | None) -> jax.Array | None:
    """`operand` unchanged, with every element of its derivatives NaN when `failed` is True.

    A loss with value checks computes its flags first (cheap functions of the targets, lengths or variances)
    and passes each floating differentiable operand through this identity before computing the loss from it.
    When a check failed, then, the loss is NaN where the data is bad (`nan_where`), and every element of the
    gradient of every operand is NaN, whatever the reduction and the cotangent: with ``'none'`` also where the
    caller masks the NaN losses out, since a batch with bad data has no trustworthy gradient. Under
    `jit`/`vmap`, where `raise_failed` cannot raise, a gradient-based guard (`optax.apply_if_finite`, a loss
    scaler) thus sees the failure instead of a plausible update computed from the valid part of the batch.
    Forward mode gives NaN tangents to the NaN loss elements (and so to a reduced loss); second derivatives
    are NaN too, except a Hessian that is identically zero (a loss piecewise linear in its operands), which
    JAX computes as a symbolic zero that no factor reaches. Values are never changed, and with valid data the
    derivatives are exactly those of the loss.

    Args:
      failed: boolean scalar, e.g. ``any_failed(failures)``; batched under `jax.vmap` (one flag per instance).
      operand: a floating array, or None (an absent optional operand), returned as it is.

    Returns:
      `operand`.
    """
    return None if operand is None else _nan_derivatives_where(failed, operand)
