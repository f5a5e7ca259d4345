"""Types shared by the public signatures, and a `jax.jit` that keeps a function's signature for type checkers."""

from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypeAlias, TypeVar

import jax
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
    """``functools.partial(jax.jit, static_argnames=...)``, as a decorator that type checkers see through.

    `jax.jit`'s result is typed as taking and returning anything, which would erase every annotation of a
    jitted loss for its users. The function returned here is exactly `jax.jit`'s (whose `functools.wraps`
    keeps `fun`'s signature and docstring for `inspect` and Sphinx); only its static type is `fun`'s.

    Args:
      static_argnames: the arguments compiled as static (hashable options), as in `jax.jit`.

    Returns:
      A decorator that jits a function and keeps its type.
    """

    def decorate(fun: Callable[_P, _R]) -> Callable[_P, _R]:
        return jax.jit(fun, static_argnames=static_argnames)

    return decorate
