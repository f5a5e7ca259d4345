"""The jitted entry point of every loss: `typed_jit`, its argument screen, and float options compiled as data."""

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclasses.dataclass(frozen=True)
class FloatOption:
    """A real-number option (a margin, ε, β, δ, ...) compiled as data rather than as a static option.

    A jitted loss takes such an option as a traced scalar: it may be a JAX scalar, traced under the caller's
    `jax.jit`, batched under `jax.vmap` and differentiated by `jax.grad`, and every Python value shares one
    compilation (`typed_jit` turns ``1``, ``1.0`` and ``np.float32(1)`` alike into the weakly typed Python
    float ``1.0``, which takes the dtype of the arrays it meets, as torch's Python-number options do).

    Attributes:
      name: the argument's name.
      expected: the valid range in words, for messages (e.g. ``"non-negative"``); unused without `is_valid`.
      is_valid: the valid range as a predicate made of comparisons and ``|``, so that it takes a Python float
        (and returns a bool) and a JAX scalar (and returns a boolean array) alike; None when any real number
        is valid.
    """

    name: str
    expected: str = ""
    is_valid: Callable[[Any], Any] | None = None

    def failures(self, value: jax.Array | float) -> _checks.Failures:
        """The option's range as a value check (see `_checks`): `typed_jit` has already raised for a value
        known before the call, so this flags a traced one, whose loss is then NaN."""
        if self.is_valid is None:
            return {}
        return {f"`{self.name}` must be {self.expected}": jnp.logical_not(self.is_valid(value))}


def typed_jit(
    *, static_argnames: tuple[str, ...], float_options: tuple[FloatOption, ...] = ()
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """``functools.partial(jax.jit, static_argnames=...)`` behind an argument screen, typed as the function.

    `jax.jit`'s result is typed as taking and returning anything, which would erase every annotation of a
    jitted loss for its users: the function returned here has `fun`'s static type (and, through
    `functools.wraps`, its signature and docstring for `inspect` and Sphinx).

    Before the jitted call, while values are still concrete, the arguments are screened (`_screen`) for what
    `jax.jit` would reject with a message naming neither the loss nor the argument, or accept silently wrong:
    torch tensors, traced or array values of static options, NumPy 64-bit integers that JAX would wrap to 32
    bits, and float options that are not real scalars or lie outside their range. Python lists of numbers are
    taken as arrays (as torch takes a tensor), and the float options' Python and NumPy values as Python floats.
    Defaults are passed explicitly, so that a float option's default and any other value share one
    compilation. Under an outer `jit`, the screen runs once, while tracing. The `jax.jit` object itself is the
    result's `jitted` attribute (for `.lower(...)` and introspection).

    Args:
      static_argnames: the arguments compiled as static (hashable options), as in `jax.jit`.
      float_options: the real-number options compiled as data (see `FloatOption`).

    Returns:
      A decorator that jits a function and keeps its type.
    """
    options = {option.name: option for option in float_options}

    def decorate(fun: Callable[_P, _R]) -> Callable[_P, _R]:
        jitted = jax.jit(fun, static_argnames=static_argnames)
        signature = inspect.signature(fun)
        # The loss's name in messages: `_nll_loss` and `cross_entropy_with_failures` serve `nll_loss` and
        # `cross_entropy`; a core shared by several losses takes the caller's name as its `loss` argument.
        default_name = fun.__name__.lstrip("_").removesuffix("_with_failures")

        @functools.wraps(fun)
        def screened(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            name = bound.arguments.get("loss", default_name)
            for argument, value in bound.arguments.items():
                if argument in options:
                    bound.arguments[argument] = screen_float_option(name, options[argument], value)
                else:
                    bound.arguments[argument] = _screen(name, argument, value, argument in static_argnames)
            result: _R = jitted(*bound.args, **bound.kwargs)
            return result

        setattr(screened, "jitted", jitted)  # noqa: B010  # `jax.jit`'s own object: `.lower`, `._cache_size()`
        return screened

    return decorate


def _screen(loss: str, argument: str, value: Any, static: bool) -> Any:
    """`value` as the jitted loss takes it, or the error that names `argument` of `loss` and what to pass."""
    if type(value).__module__.partition(".")[0] == "torch":
        raise TypeError(
            f"{loss}: `{argument}` is a {type(value).__module__}.{type(value).__name__}; jaxloss takes JAX or NumPy "
            f"arrays: pass jnp.asarray({argument}.detach().cpu().numpy())."
        )
    if static:
        if isinstance(value, jax.Array | np.ndarray):
            raise TypeError(
                f"{loss}: `{argument}` must be a Python value, not an array: it is compiled as a static option, "
                f"so a traced or batched value cannot be used; got {type(value).__name__}."
            )
        return value
    if _is_number_list(value):
        return np.asarray(value)
    if isinstance(value, np.ndarray | np.integer) and np.issubdtype(value.dtype, np.integer):
        narrowed = np.iinfo(jax.dtypes.canonicalize_dtype(value.dtype))  # int32 for int64 while x64 is off
        if value.size and (value.min() < narrowed.min or value.max() > narrowed.max):
            raise ValueError(
                f"{loss}: `{argument}` holds {value.dtype} values outside {narrowed.dtype}'s range ([{value.min()}, "
                f"{value.max()}]), which JAX would wrap while 64-bit types are disabled; enable them "
                "(jax.config.update('jax_enable_x64', True)) or pass values that fit."
            )
    return value


def screen_float_option(loss: str, option: FloatOption, value: Any) -> jax.Array | float:
    """A float option as the jitted loss takes it: a Python float for a Python or NumPy real number (one
    compilation for every value), a real 0-dim JAX array (traced or not) as it is; else the error naming it.

    `typed_jit` screens the float options it is given; a loss whose checks must come before the screen (in
    torch's order) calls this itself."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a NumPy scalar
    screened: jax.Array | float
    if isinstance(value, jax.Array):
        if value.ndim or not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
            raise TypeError(
                f"{loss}: `{option.name}` must be a real scalar; got an array of shape {value.shape} and dtype "
                f"{value.dtype} (under jax.vmap, batch it along its only axis)."
            )
        screened, known = value, _checks.concrete_value(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        screened = float(value)
        # Checked as the loss will see it: float32 while 64-bit types are disabled (1e-50 is then 0).
        known = np.asarray(screened, jax.dtypes.canonicalize_dtype(np.float64))
    else:
        raise TypeError(f"{loss}: `{option.name}` must be a real number; got {value!r}.")
    if option.is_valid is not None and known is not None and not option.is_valid(known):
        raise ValueError(f"{loss}: `{option.name}` must be {option.expected}; got {known.item()!r}.")
    return screened


def _is_number_list(value: Any) -> bool:
    """Whether `value` is a (nested) Python list of numbers, such as ``weight=[1.0, 2.0]``: data given as a
    list. Tuples are left alone: JAX takes them as pytrees (several arrays)."""
    return isinstance(value, list) and all(isinstance(item, int | float) or _is_number_list(item) for item in value)
