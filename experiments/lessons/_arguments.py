"""The lessons' command line: one parser for all of them, and the checks on their numbers.

Every lesson builds its parser with `lesson_parser` and types its numbers with `integer`, `positive_int` and
`positive_float`, so that ``--help`` prints the lesson's docstring and each argument with its default, and a
nonsensical value (a batch size of 0, a learning rate of ``nan``, an unknown argument) stops the lesson before it
loads any data (one the data rules out, such as more batches than it holds, right after), with one line that names
the argument and says what it expects::

    $ python experiments/lessons/lesson4_optimizer.py --batch_size 0
    lesson4_optimizer.py: error: argument --batch_size: expected an integer > 0; got '0' (--help lists the arguments)
"""

import argparse
import math
import pathlib
from typing import NoReturn


def integer(text: str) -> int:
    """An integer from the command line, e.g. a seed.

    Raises:
      argparse.ArgumentTypeError: `text` is not an integer; argparse prefixes the argument's name.
    """
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer > 0 from the command line, e.g. a batch size or a number of epochs.

    Raises:
      argparse.ArgumentTypeError: `text` is not an integer, or is <= 0; argparse prefixes the argument's name.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 from the command line, e.g. a learning rate.

    Raises:
      argparse.ArgumentTypeError: `text` is not a number, or is NaN, infinite or <= 0; argparse prefixes the
        argument's name.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout (its run commands) and shows each argument's default."""


class LessonArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line (not the usage, then the error) and exit with 2."""

    def error(self, message: str) -> NoReturn:
        """Prints ``prog: error: message`` on stderr and exits with status 2, as argparse does, without the usage.

        Lessons call it too for a value that only the data can rule out, e.g. more batches than the data holds.
        """
        self.exit(2, f"{self.prog}: error: {message} (--help lists the arguments)\n")


def lesson_parser(doc: str | None, file: str) -> LessonArgumentParser:
    """The parser of one lesson: its docstring as the description, its file's name as the program.

    Args:
      doc: the lesson's module docstring (``__doc__``), printed by ``--help``.
      file: the lesson's ``__file__``; ``--help`` and the errors name the script by it.

    Returns:
      A parser with ``--help`` alone; the lesson adds its own arguments, each with a ``help`` text.
    """
    return LessonArgumentParser(prog=pathlib.Path(file).name, description=doc, formatter_class=_HelpFormatter)
