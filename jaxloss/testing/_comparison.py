"""One output or gradient of a JAX function against torch's: how far apart they are, and a report a person reads."""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from jaxloss.testing._tolerances import DTypeName, Mode, Tolerance

# How many positions a report lists before it says "and N more".
_LISTED = 8


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One array of the JAX function's results (an output or a gradient) against torch's.

    Attributes:
      what: which array: ``'value'`` (or ``'value[0]'``, ``"value['logits']"`` for several outputs), or
        ``'d/dinput'`` (``"d/dparams['fc.weight']"`` for a leaf of a structured argument).
      dtype: the dtype the check ran in.
      mode: ``'eager'`` or ``'jit'``.
      tolerance: the tolerance it was held to.
      passed: whether shape, dtype and every element agree.
      size: the number of elements compared.
      mismatched: how many elements are beyond the tolerance, NaN and infinities placed differently included.
      max_abs_error: the largest ``|jax - torch|`` over the elements finite on both sides (0 when none are).
      max_rel_error: the largest ``|jax - torch| / |torch|`` over them (``inf`` where torch has 0 and JAX not).
      exact: whether the elements were compared for equality (integer and boolean arrays), not within `tolerance`.
      problem: a shape or dtype disagreement, which stops the element comparison; ``None`` when they agree.
      details: lines that say where the elements differ: the worst one, positions beyond the tolerance, and
        positions where NaN or an infinity is on one side only.
    """

    what: str
    dtype: DTypeName
    mode: Mode
    tolerance: Tolerance
    passed: bool
    size: int = 0
    mismatched: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    exact: bool = False
    problem: str | None = None
    details: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: what, where it ran, and how far apart the two sides are."""
        where = f"{self.what} ({self.dtype}, {self.mode})"
        if self.problem is not None:
            return f"{where}: {self.problem}"
        if self.exact:
            return (
                f"{where}: "
                + ("ok" if self.passed else f"{self.mismatched} of {self.size} elements differ")
                + " (compared exactly)"
            )
        errors = f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}"
        if self.passed:
            return f"{where}: ok, {errors}"
        return f"{where}: {self.mismatched} of {self.size} elements differ beyond {self.tolerance}; {errors}"

    def report(self) -> str:
        """`summary` and, for a failure, the lines that say where."""
        return "\n".join([self.summary(), *(f"    {line}" for line in self.details)])


def _index(flat_index: int, shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat_index, shape)) + "]" if shape else "[]"


def _positions(flat_indices: np.ndarray, shape: tuple[int, ...]) -> str:
    listed = ", ".join(_index(int(i), shape) for i in flat_indices[:_LISTED])
    more = len(flat_indices) - _LISTED
    return listed + (f" and {more} more" if more > 0 else "")


def _element_details(
    actual: np.ndarray, expected: np.ndarray, beyond: np.ndarray, error: np.ndarray
) -> tuple[str, ...]:
    """Lines naming the worst element, the elements beyond the tolerance, and one-sided NaN and infinities.

    `actual` and `expected` keep their shape and dtype (values print as their dtype holds them); `beyond` and
    `error` are flat.
    """
    shape = actual.shape
    actual, expected = actual.ravel(), expected.ravel()
    lines = []
    finite_beyond = np.flatnonzero(beyond & np.isfinite(actual) & np.isfinite(expected))
    if finite_beyond.size:
        worst = int(finite_beyond[np.argmax(error[finite_beyond])])
        lines.append(
            f"worst at {_index(worst, shape)}: jax {actual[worst]!s}, torch {expected[worst]!s} "
            f"(difference {error[worst]:.3g})"
        )
        lines.append(f"beyond the tolerance at {_positions(finite_beyond, shape)}")
    for name, kind in (("NaN", np.isnan), ("an infinity", np.isinf)):
        for side, here, there in (("jax", actual, expected), ("torch", expected, actual)):
            one_sided = np.flatnonzero(kind(here) & ~kind(there))
            if one_sided.size:
                lines.append(f"{name} in {side} only at {_positions(one_sided, shape)}")
    opposite = np.flatnonzero(np.isinf(actual) & np.isinf(expected) & (actual != expected))
    if opposite.size:
        lines.append(f"infinities of opposite signs at {_positions(opposite, shape)}")
    return tuple(lines)


def compare_arrays(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    what: str,
    dtype: DTypeName,
    mode: Mode,
    tolerance: Tolerance,
    expected_dtype: np.dtype,
) -> Comparison:
    """Compares the JAX function's `actual` with torch's `expected`.

    Args:
      actual: the JAX side's array.
      expected: torch's array, as NumPy.
      what: which output or gradient (see `Comparison.what`).
      dtype: the dtype the check ran in.
      mode: how the JAX function ran.
      tolerance: the tolerance for floating elements; integer and boolean elements must be equal.
      expected_dtype: the dtype `actual` must have (torch's, as JAX would hold it; see `compare_parity`).

    Returns:
      The `Comparison`.
    """
    comparison = functools.partial(Comparison, what=what, dtype=dtype, mode=mode, tolerance=tolerance)
    if actual.shape != expected.shape:
        return comparison(passed=False, problem=f"shape {actual.shape}, torch's {expected.shape}")
    if actual.dtype != expected_dtype:
        return comparison(passed=False, problem=f"dtype {actual.dtype}, expected {expected_dtype}")
    shape, size = actual.shape, actual.size
    if not jnp.issubdtype(actual.dtype, jnp.inexact):  # jnp's: bfloat16 is inexact to JAX, not to NumPy
        beyond = (actual != expected).ravel()
        mismatched = int(beyond.sum())
        details = () if not mismatched else (f"unequal at {_positions(np.flatnonzero(beyond), shape)}",)
        return comparison(passed=not mismatched, size=size, mismatched=mismatched, exact=True, details=details)
    # Differences in double precision, whatever the dtype, so that they do not round themselves.
    wide = np.complex128 if jnp.issubdtype(actual.dtype, jnp.complexfloating) else np.float64
    a, e = actual.astype(wide).ravel(), expected.astype(wide).ravel()
    both_finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(divide="ignore", invalid="ignore"):  # inf - inf and x / 0, masked out by `where`
        error = np.where(both_finite, np.abs(a - e), 0.0)
        relative = np.where(error > 0, error / np.abs(e), 0.0)
    within = np.where(
        both_finite,
        error <= tolerance.atol + tolerance.rtol * np.abs(e),
        (np.isnan(a) & np.isnan(e)) | (a == e),  # NaN meets NaN; an infinity the same infinity
    )
    beyond = ~within
    mismatched = int(beyond.sum())
    return comparison(
        passed=not mismatched,
        size=size,
        mismatched=mismatched,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float(relative.max(initial=0.0)),
        details=_element_details(actual, expected, beyond, error) if mismatched else (),
    )
