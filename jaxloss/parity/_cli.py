"""``python -m jaxloss.parity``: run the parity grid against the installed torch, on JAX's device, and report.

Usage::

    python -m jaxloss.parity [--losses NAMES] [--dtypes NAMES] [--modes NAMES] [--time-budget SECONDS]
                             [--json PATH] [--markdown PATH] [--quiet]

Every case of the grid (`jaxloss.parity.cases`) runs in each dtype of ``--dtypes`` and mode of ``--modes`` that it
runs in itself (`jaxloss.parity.Case.dtypes`, ``Case.modes``): jaxloss on JAX's default device
(``jax.devices()[0]``), torch on the CPU as the judge, through `jaxloss.testing.compare_parity`, with warnings
silenced (some losses warn by design). An exception on either side is recorded as a failure with its message.
A failed comparison that a known difference of the installed torch explains
(`jaxloss.parity._known_differences.KNOWN_DIFFERENCES`) counts as "known", not as a failure.

The command prints a table per loss (rows: dtype × mode; columns: the cases run, the largest absolute and
relative errors of the values and of the gradients, the failures, the known differences, pass or fail), the
report of every failed or known-different comparison, the known differences of the installed torch, and a
summary line. ``--json`` and ``--markdown`` write the same report to files (the JSON schema:
`jaxloss.parity._report`).

Options:
  --losses: comma-separated names from `jaxloss.parity.LOSSES`; all of them by default.
  --dtypes: comma-separated, from float32, float64, float16, bfloat16; all four by default, so that the whole
    grid runs: a case runs only in its own dtypes, and only the cases that declare float16 or bfloat16 run in
    them (jaxloss gets 16-bit arguments, torch the same values in float32, and the 16-bit tolerance applies).
  --modes: comma-separated, from eager, jit; both by default.
  --time-budget: seconds after which no further case × dtype × mode run starts (the one under way finishes).
    The report counts the runs skipped and is marked incomplete; an incomplete run passes when every comparison
    that ran passed, and its summary line says "incomplete".
  --json, --markdown: the files to write the report to.
  --quiet: leave out the tables and the progress (on stderr, a line as each loss starts:
    ``[145/1639] mse_loss``); the mismatches and the summary line are still printed.

Exit status:
  0: every comparison passed or is a known difference.
  1: some comparison failed and no known difference explains it.
  2: bad command-line arguments (argparse's), or arguments that select no run at all.
  3: an environment problem (torch is not installed or its version cannot be read, JAX cannot start its
    backend, a family of the grid cannot be imported, a report cannot be written), in one line ``error: ...``
    on stderr.

A torch outside the releases jaxloss is tested against (2.13, 2.14) gets a warning on stderr, ``warning:
untested torch X; differences not listed may appear``, and the run goes on.
"""

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxloss.parity._grid import LOSSES, cases
from jaxloss.parity._known_differences import applying_to, is_tested, torch_version
from jaxloss.parity._report import environment, report, to_json, to_markdown, to_text
from jaxloss.parity._run import Run, plan, run_grid
from jaxloss.testing import DTYPE_NAMES, MODES
from jaxloss.testing._torch import require_torch


def _names(choices: Sequence[str], kind: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: comma-separated names from `choices`, without repeats."""

    def parse(text: str) -> tuple[str, ...]:
        names = [name.strip() for name in text.split(",")]
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(repr, unknown))}; expected comma-separated names from: "
                + ", ".join(choices)
            )
        return tuple(dict.fromkeys(names))

    return parse


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return seconds


def _output(text: str) -> Path:
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the directory of {text!r} does not exist")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jaxloss.parity",
        description="Runs jaxloss's parity grid against the installed torch on JAX's device, and reports.",
    )
    parser.add_argument(
        "--losses",
        type=_names(LOSSES, "loss"),
        default=LOSSES,
        metavar="NAMES",
        help="comma-separated losses (default: all)",
    )
    parser.add_argument(
        "--dtypes",
        type=_names(DTYPE_NAMES, "dtype"),
        default=DTYPE_NAMES,
        metavar="NAMES",
        help=f"comma-separated, of {','.join(DTYPE_NAMES)} (default: all; each case runs only in its own dtypes)",
    )
    parser.add_argument(
        "--modes",
        type=_names(MODES, "mode"),
        default=MODES,
        metavar="NAMES",
        help=f"of {','.join(MODES)} (default: both)",
    )
    parser.add_argument(
        "--time-budget",
        type=_seconds,
        metavar="SECONDS",
        help="start no case after this many seconds; the report is then incomplete",
    )
    parser.add_argument("--json", type=_output, metavar="PATH", help="write the JSON report here")
    parser.add_argument("--markdown", type=_output, metavar="PATH", help="write the Markdown report here")
    parser.add_argument(
        "--quiet", action="store_true", help="print no progress and no tables, only the mismatches and the summary"
    )
    return parser


def _environment_error(message: str) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return 3


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the parity report, as ``python -m jaxloss.parity`` does: the grid against the installed torch on JAX's
    default device, a table per loss on stdout, and the JSON and Markdown reports asked for.

    Args:
      argv: the command-line arguments, without the program; ``sys.argv[1:]`` by default.

    Returns:
      The exit status: 0 passed, 1 failed, 3 an environment problem.

    Raises:
      SystemExit: with status 2, as argparse does, for bad arguments.

    Example:
      >>> status = main(["--losses", "l1_loss", "--dtypes", "float64", "--modes", "jit", "--quiet"])
      jaxloss ... against torch ...
      ...
      parity passed: 36 cases, 36 runs, 102 comparisons, 0 failures, 0 known differences, ... s
      >>> status
      0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        version = torch_version(str(require_torch().__version__))
        env = environment(shlex.join(["python", "-m", "jaxloss.parity", *argv]), torch_tested=is_tested(version))
    except (ImportError, RuntimeError, ValueError) as error:  # no torch, or an odd one; JAX's backend fails
        return _environment_error(str(error))
    try:
        runs = plan(cases(args.losses), args.dtypes, args.modes)
    except ImportError as error:
        return _environment_error(f"cannot build the parity grid: {error}")
    if not runs:
        parser.error(
            f"no case of {', '.join(args.losses)} runs in {', '.join(args.dtypes)} and {', '.join(args.modes)}"
        )
    if not env["torch_tested"]:
        print(f"warning: untested torch {env['torch']}; differences not listed may appear", file=sys.stderr)
    if "float64" in args.dtypes and not env["x64"]:
        print(f"warning: float64 does not compute on {env['device_kind']}; its runs will fail", file=sys.stderr)
    known = tuple(difference for difference in applying_to(version) if difference.loss in args.losses)

    def progress(index: int, run: Run) -> None:
        if index == 0 or runs[index - 1].case.loss != run.case.loss:
            print(f"[{index + 1}/{len(runs)}] {run.case.loss}", file=sys.stderr, flush=True)

    results = run_grid(runs, known=known, time_budget=args.time_budget, on_start=None if args.quiet else progress)
    options = {key: list(getattr(args, key)) for key in ("losses", "dtypes", "modes")}
    options["time_budget"] = args.time_budget
    document = report(results, environment=env, options=options, known=known)
    print(to_text(document, tables=not args.quiet), end="")
    try:
        if args.json is not None:
            args.json.write_text(to_json(document))
        if args.markdown is not None:
            args.markdown.write_text(to_markdown(document))
    except OSError as error:
        return _environment_error(f"cannot write the report: {error}")
    return 0 if document["passed"] else 1
