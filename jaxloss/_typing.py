"""Types shared by the public signatures, and a `jax.jit` that keeps a function's signature for type checkers."""

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypeAlias, TypeVar

import jax
import numpy as np
from jax.typing import ArrayLike

Reduction: TypeAlias = Literal["none", "mean", "sum"]
"""The `reduction` of every loss but `kl_div`: keep the element losses, or their mean or sum."""

KLDivReduction: TypeAlias = Literal["none", "batchmean", "sum", "mean"]
"""`kl_div`'s `reduction`: also ``'batchmean'``, the sum divided by the batch size."""

DistanceFunction: TypeAlias = Callable[[Any, Any], ArrayLike]
"""A distance between two arrays, the triplet losses' inputs as given; e.g. `functional.pairwise_distance`."""

Lengths: TypeAlias = ArrayLike | list[int] | tuple[int, ...]
"""`ctc_loss`'s sequence lengths: an integer array, or a list or tuple of ints."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def typed_jit(*, static_argnames: tuple[str, ...]) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """``functools.partial(jax.jit, static_argnames=...)`` behind an argument screen, typed as the function.

    `jax.jit`'s result is typed as taking and returning anything, which would erase every annotation of a
    jitted loss for its users: the function returned here has `fun`'s static type (and, through
    `functools.wraps`, its signature and docstring for `inspect` and Sphinx).

    Before the jitted call, while values are still concrete, the arguments are screened (`_screen`) for what
    `jax.jit` would reject with a message naming neither the loss nor the argument, or accept silently wrong:
    torch tensors, traced or array values of static options, and NumPy 64-bit integers that JAX would wrap
    to 32 bits. Python lists of numbers are taken as arrays (as torch takes a tensor). Under an
    outer `jit`, the screen runs once, while tracing. The `jax.jit` object itself is the result's `jitted`
    attribute (for `.lower(...)` and introspection).

    Args:
      static_argnames: the arguments compiled as static (hashable options), as in `jax.jit`.

    Returns:
      A decorator that jits a function and keeps its type.
    """

    def decorate(fun: Callable[_P, _R]) -> Callable[_P, _R]:
        jitted = jax.jit(fun, static_argnames=static_argnames)
        signature = inspect.signature(fun)
        # The loss's name in messages: `_nll_loss` and `cross_entropy_with_failures` serve `nll_loss` and
        # `cross_entropy`; a core shared by several losses takes the caller's name as its `loss` argument.
        default_name = fun.__name__.lstrip("_").removesuffix("_with_failures")

        @functools.wraps(fun)
        def screened(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bound = signature.bind(*args, **kwargs)
            name = bound.arguments.get("loss", default_name)
            for argument, value in bound.arguments.items():
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


def _is_number_list(value: Any) -> bool:
    """Whether `value` is a (nested) Python list of numbers, such as ``weight=[1.0, 2.0]``: data given as a
    list. Tuples are left alone: JAX takes them as pytrees (several arrays)."""
    return isinstance(value, list) and all(isinstance(item, int | float) or _is_number_list(item) for item in value)
