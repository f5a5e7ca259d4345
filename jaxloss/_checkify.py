"""Value checks under `jit` as `jax.experimental.checkify` errors: jaxloss.checkify."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from jax.experimental import checkify as jax_checkify

from jaxloss import _checks

_P = ParamSpec("_P")
_R = TypeVar("_R")


def checkify(fn: Callable[_P, _R]) -> Callable[_P, tuple[jax_checkify.Error, _R]]:
    """`jax.experimental.checkify.checkify` of `fn`, with jaxloss's checks on data values as its errors.

    Eagerly, jaxloss raises `ValueError` for bad data (class indices out of range, BCE probabilities outside
    [0, 1], a negative variance, ...). Under `jax.jit` or `jax.vmap` the values are unknown while tracing and
    the affected results are NaN instead. Wrapped by this function, the same checks are carried out on the
    device and reported as a checkify error that names the loss and the argument:

    >>> import jax, jax.numpy as jnp, jaxloss
    >>> import jaxloss.functional as F
    >>> checked = jax.jit(jaxloss.checkify(F.cross_entropy))
    >>> error, loss = checked(jnp.zeros((2, 3)), jnp.array([0, 5]))
    >>> print(error.get())  # doctest: +ELLIPSIS
    cross_entropy: `target` must hold class indices in [0, 3) or `ignore_index` (-100)...
    >>> error, loss = checked(jnp.zeros((2, 3)), jnp.array([0, 2]))
    >>> print(error.get())
    None

    Wrap the function that calls the losses and apply `jax.jit` outside the wrapper, as above: a function that
    was jitted on its own before may be taken from JAX's compilation cache as it was traced, without checks.

    Args:
      fn: a function calling jaxloss losses.

    Returns:
      A function with `fn`'s arguments that returns ``(error, fn's output)``; ``error.throw()`` raises the
      first failed check, ``error.get()`` describes it (None when all passed).
    """
    checked = jax_checkify.checkify(fn, errors=jax_checkify.user_checks)

    @functools.wraps(fn)
    def with_value_checks(*args: _P.args, **kwargs: _P.kwargs) -> tuple[jax_checkify.Error, _R]:
        with _checks.checkify_value_checks():
            return checked(*args, **kwargs)

    return with_value_checks
