"""Running the parity grid: each case in each dtype and mode asked for, within a time budget, and what came of it."""

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from jaxloss.parity._case import Case
from jaxloss.parity._known_differences import KnownDifference
from jaxloss.testing import DTypeName, Mode

Status = Literal["passed", "known", "failed"]


@dataclasses.dataclass(frozen=True)
class Run:
    """One case in one dtype and mode: a call of `Case.compare`."""

    case: Case
    dtype: DTypeName
    mode: Mode


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One comparison a run made, or the exception that stopped the run.

    Attributes:
      run: the run.
      what: the comparison's `jaxloss.testing.Comparison.what`, or ``'error'`` where either side raised.
      passed: whether the comparison passed (never, for an exception).
      max_abs_error: the comparison's largest absolute error (0 for an exception).
      max_rel_error: its largest relative error (0 for an exception).
      report: `jaxloss.testing.Comparison.report`, or the exception's type and message.
      known: the known difference that explains a failed comparison, or ``None``.
    """

    run: Run
    what: str
    passed: bool
    max_abs_error: float
    max_rel_error: float
    report: str
    known: KnownDifference | None = None

    @property
    def status(self) -> Status:
        """``'passed'``, ``'known'`` (failed, and a known difference explains it) or ``'failed'``."""
        return "passed" if self.passed else "known" if self.known is not None else "failed"


@dataclasses.dataclass(frozen=True)
class Results:
    """What running the grid found.

    Attributes:
      ran: the runs started, in order.
      skipped: the runs not started because the time budget was spent.
      outcomes: every comparison of the runs started, in order.
      seconds: the wall time of the runs.
    """

    ran: tuple[Run, ...]
    skipped: tuple[Run, ...]
    outcomes: tuple[Outcome, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        """Whether no comparison failed other than known differences (of the runs started)."""
        return all(outcome.status != "failed" for outcome in self.outcomes)


def plan(cases: Iterable[Case], dtypes: Sequence[DTypeName], modes: Sequence[Mode]) -> list[Run]:
    """The runs of `cases`, loss by loss (in the order the losses first appear, each loss's cases in their order),
    each case in the `dtypes` and `modes` that it runs in itself (`Case.dtypes`, `Case.modes`), in the order of
    `dtypes` and `modes`."""
    cases = list(cases)
    order: dict[str, int] = {}
    for case in cases:
        order.setdefault(case.loss, len(order))
    return [
        Run(case, dtype, mode)
        for case in sorted(cases, key=lambda case: order[case.loss])
        for dtype in dtypes
        if dtype in case.dtypes
        for mode in modes
        if mode in case.modes
    ]


def _outcomes(run: Run, known: Sequence[KnownDifference]) -> list[Outcome]:
    """Runs `run` with warnings silenced (some losses warn by design, as torch's kl_div with 'mean' does)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparisons = run.case.compare(run.dtype, run.mode)
        found = [Outcome(run, c.what, c.passed, c.max_abs_error, c.max_rel_error, c.report()) for c in comparisons]
    except Exception as error:  # either side's: the report records it as a failure, and the grid goes on
        report = f"error ({run.dtype}, {run.mode}): {type(error).__name__}: {error}"
        found = [Outcome(run, "error", False, 0.0, 0.0, report)]
    return [
        outcome
        if outcome.passed
        else dataclasses.replace(
            outcome,
            known=next((k for k in known if k.explains(run.case.loss, run.case.id, outcome.what)), None),
        )
        for outcome in found
    ]


def run_grid(
    runs: Sequence[Run],
    *,
    known: Sequence[KnownDifference] = (),
    time_budget: float | None = None,
    on_start: Callable[[int, Run], None] | None = None,
) -> Results:
    """Runs `runs` in order and records every comparison; an exception in a run is recorded as a failure.

    Args:
      runs: the runs (see `plan`).
      known: the known differences that apply to the installed torch: a failed comparison one of them explains
        gets it as its `Outcome.known`.
      time_budget: seconds after which no further run starts: the run under way finishes, and the first run
        always starts. ``None`` for no limit.
      on_start: called with the index of each run in `runs` and the run, as it starts (to show progress).

    Returns:
      The `Results`.
    """
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    started = 0
    for run in runs:
        if started and time_budget is not None and time.perf_counter() - start >= time_budget:
            break
        if on_start is not None:
            on_start(started, run)
        outcomes += _outcomes(run, known)
        started += 1
    return Results(tuple(runs[:started]), tuple(runs[started:]), tuple(outcomes), time.perf_counter() - start)
