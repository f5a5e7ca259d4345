"""A `Case` of the parity grid: one call of one loss, run in torch and in jaxloss and compared."""

import dataclasses
import functools
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

import jaxloss.functional as F
from jaxloss.parity import _known_differences
from jaxloss.testing import Comparison, DTypeName, Mode, Tolerance, compare_parity
from jaxloss.testing._parity import raise_if_failed
from jaxloss.testing._torch import require_torch


@dataclasses.dataclass(frozen=True)
class Case:
    """One call of one loss.

    Attributes:
      loss: the function's name, the same in `jaxloss.functional` and `torch.nn.functional`.
      id: a readable id, ``{loss}-{variant}-{reduction}``, e.g. ``cross_entropy-4d_weights-mean``.
      arrays: the array arguments by name, as NumPy arrays (floating ones are cast to the dtype of the run).
      options: the other keyword arguments, given to both libraries as they are.
      grad: the names of the arguments to differentiate.
      jax_options: keyword arguments given to jaxloss only (its JAX-native extras, such as ``axis``).
      tolerance: per-dtype overrides of `jaxloss.testing.DEFAULT_TOLERANCES`.
      dtypes: the dtypes the case runs in.
      modes: the modes the case runs in.
    """

    loss: str
    id: str
    arrays: Mapping[str, np.ndarray]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grad: tuple[str, ...] = ()
    jax_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: Mapping[DTypeName, Tolerance] = dataclasses.field(default_factory=dict)
    dtypes: tuple[DTypeName, ...] = ("float32", "float64")
    modes: tuple[Mode, ...] = ("eager", "jit")

    def __str__(self) -> str:
        return self.id

    def in_16_bit(self) -> "Case":
        """The case in float16 and bfloat16, under jit only: jaxloss computes 16-bit inputs in float32 and returns
        16-bit results, a computation that does not depend on the mode (eager against jit is checked in float32
        and float64); torch judges the same rounded inputs in float32 (see `jaxloss.testing.DTypeName`)."""
        return dataclasses.replace(self, dtypes=("float16", "bfloat16"), modes=("jit",))

    def compare(self, dtype: DTypeName, mode: Mode) -> list[Comparison]:
        """Runs the case in torch and in jaxloss: see `jaxloss.testing.compare_parity`."""
        jax_fn = functools.partial(getattr(F, self.loss), **self.options, **self.jax_options)
        torch_fn = functools.partial(getattr(require_torch().nn.functional, self.loss), **self.options)
        return compare_parity(
            jax_fn, torch_fn, self.arrays, grad=self.grad, dtype=dtype, mode=mode, tolerance=self.tolerance
        )

    def check(self, dtype: DTypeName, mode: Mode) -> None:
        """Runs the case and raises `jaxloss.testing.ParityError`, with its report, if jaxloss differs from torch
        where no known difference of the installed torch from 2.13 explains it (`python -m jaxloss.parity`
        lists them)."""
        known = _known_differences.of_installed_torch()
        unexplained = [
            comparison
            for comparison in self.compare(dtype, mode)
            if not any(difference.explains(self.loss, self.id, comparison.what) for difference in known)
        ]
        raise_if_failed(unexplained, f"jaxloss differs from torch on {self.id}")


def grid(
    loss: str,
    variants: Mapping[str, Mapping[str, Any]],
    reductions: tuple[str, ...] = ("none", "mean", "sum"),
) -> list[Case]:
    """Cases for every variant × reduction, with ids ``{loss}-{variant}-{reduction}``.

    Args:
      loss: the function's name.
      variants: maps a variant name (shape and options, e.g. ``"4d_weights"``) to the `Case` fields other than
        `loss`, `id` and the ``reduction`` option.
      reductions: the reductions to cross with every variant.

    Returns:
      The cases, variant by variant.
    """
    cases = []
    for (name, fields), reduction in itertools.product(variants.items(), reductions):
        fields = dict(fields)
        options = {**fields.pop("options", {}), "reduction": reduction}
        cases.append(Case(loss=loss, id=f"{loss}-{name}-{reduction}", options=options, **fields))
    return cases
