"""Printing a lesson's numbers next to torch's and the original lesson's, and checking that they agree.

Every lesson computes its numbers with jaxloss and JAX. Where torch is installed it runs the torch original too
and `show` prints both and checks them; without torch the lessons still run and print the JAX side.

This module is the lessons' helper, not a lesson: run as a script, it lists the lessons to run::

    python experiments/lessons/side_by_side.py
"""

import importlib.util
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments.lessons import _arguments

# float32 results of two libraries: equal up to rounding.
RTOL, ATOL = 1e-5, 1e-6


def torch_installed() -> bool:
    """Whether torch can be imported (the lessons then run the torch original side by side)."""
    return importlib.util.find_spec("torch") is not None


def as_text(value) -> str:
    """A number or array on one line, 4 decimals, as the lessons print them."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return f"{float(array):.4f}"
    text = np.array2string(array, precision=4, floatmode="fixed", separator=", ", suppress_small=True)
    return " ".join(text.split())


def show(label: str, value, torch_value=None, *, lesson_printed: str | None = None) -> None:
    """Prints `label: value`, torch's value when given, and what the original lesson printed when known.

    Args:
        label: what the number is, e.g. ``"L1Loss() on [1, 2, 3] vs [1, 2, 5]"``.
        value: the JAX result (a number or array).
        torch_value: torch's result for the same computation (a tensor or array), or None.
        lesson_printed: the original lesson's printout of the number, e.g. ``"tensor(0.6667)"``.

    Raises:
        AssertionError: if `value` and `torch_value` differ beyond float32 rounding.
    """
    line = f"{label}: {as_text(value)}"
    if torch_value is not None:
        torch_array = np.asarray(torch_value.detach() if hasattr(torch_value, "detach") else torch_value)
        np.testing.assert_allclose(
            np.asarray(value), torch_array, rtol=RTOL, atol=ATOL, err_msg=f"{label}: jaxloss and torch disagree"
        )
        line += f"   (torch: {as_text(torch_array)})"
    if lesson_printed is not None:
        line += f"   [the lesson printed {lesson_printed}]"
    print(line)


def main(argv: Sequence[str] | None = None) -> None:
    """Prints the lessons' commands (the module takes no arguments; `argv` None is `sys.argv`)."""
    _arguments.lesson_parser(__doc__, __file__).parse_args(argv)
    print("side_by_side.py is the lessons' helper, not a lesson. The lessons, run from the repository root:")
    for lesson in sorted(pathlib.Path(__file__).parent.glob("lesson*.py")):
        print(f"    python experiments/lessons/{lesson.name}")


if __name__ == "__main__":
    main()
