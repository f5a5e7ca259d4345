"""jaxloss's parity grid: every loss, called in torch and in jaxloss on the same data, values and gradients.

Each `Case` is one call of one loss (shapes, options, reductions, extreme inputs, the kinks where a subgradient
is chosen); `cases` returns the grid, and ``Case.compare(dtype, mode)`` runs one case through
`jaxloss.testing.compare_parity`. jaxloss's own test suite runs this grid; ``python -m jaxloss.parity`` runs it
against the torch installed beside jaxloss, on the device JAX uses, and reports every loss's largest errors.
"""

from jaxloss.parity import _grid
from jaxloss.parity._case import Case as Case
from jaxloss.parity._case import grid as grid
from jaxloss.parity._cli import main as main
from jaxloss.parity._grid import cases as cases

# Data are assigned here, with their docstrings, so that the API reference finds them.
FAMILIES = _grid.FAMILIES
"""The losses by family, as jaxloss's modules group them: family name -> loss names."""

LOSSES = _grid.LOSSES
"""Every loss of the grid: every loss of `jaxloss.functional`."""

__all__ = ["FAMILIES", "LOSSES", "Case", "cases", "grid", "main"]
