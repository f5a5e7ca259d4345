"""The parity report: the environment, and what a run of the grid found, as JSON, a text table and Markdown.

`report` builds the JSON document; the text and Markdown renderings read their numbers from it, so all three
agree. The JSON report (``python -m jaxloss.parity --json PATH``) is described field by field in docs/parity.md, "The
JSON report"; `SCHEMA` is its version.
"""

import dataclasses
import datetime
import itertools
import json
import math
import platform
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np

import jaxloss
from jaxloss.parity._known_differences import KnownDifference
from jaxloss.parity._run import Outcome, Results
from jaxloss.testing._torch import require_torch

SCHEMA = 1
"""The version of the JSON report's schema."""

# Each error column: (JSON key, the prefix of the comparisons it covers, the Outcome attribute, heading).
_ERRORS = (
    ("value_max_abs_error", "value", "max_abs_error", "value max abs"),
    ("value_max_rel_error", "value", "max_rel_error", "value max rel"),
    ("grad_max_abs_error", "d/d", "max_abs_error", "grad max abs"),
    ("grad_max_rel_error", "d/d", "max_rel_error", "grad max rel"),
)
_HEADINGS = ("dtype", "mode", "cases", *(heading for *_, heading in _ERRORS), "failures", "known", "result")


def _x64_available() -> bool:
    """Whether a float64 computation runs on JAX's default device (with x64 enabled, as float64 runs have it)."""
    try:
        with jax.enable_x64(True):
            return bool(jnp.ones(2, jnp.float64).sum().dtype == jnp.float64)
    except Exception:  # a device without float64 raises an error of its own kind, or computes in float32
        return False


def environment(command: str, *, torch_tested: bool) -> dict[str, Any]:
    """The report's ``environment``: versions, JAX's device, the date and the command line.

    Args:
      command: the command line.
      torch_tested: whether the installed torch is of a release jaxloss is tested against.

    Returns:
      The ``environment`` object of the JSON report.

    Raises:
      ModuleNotFoundError: if torch is not installed.
      RuntimeError: if JAX cannot start its backend.
    """
    device = jax.devices()[0]
    return {
        "jaxloss": jaxloss.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__,
        "torch": str(require_torch().__version__),
        "torch_tested": torch_tested,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "x64": _x64_available(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
    }


def _number(value: float) -> float | str:
    """A JSON number, or ``'inf'`` (JSON has no infinities)."""
    return value if math.isfinite(value) else str(value)


def _counts(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    failures = sum(outcome.status == "failed" for outcome in outcomes)
    known = sum(outcome.status == "known" for outcome in outcomes)
    return {"comparisons": len(outcomes), "failures": failures, "known": known, "passed": not failures}


def _row(dtype: str, mode: str, runs: int, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    errors = {}
    for key, prefix, attribute, _ in _ERRORS:
        found = [getattr(outcome, attribute) for outcome in outcomes if outcome.what.startswith(prefix)]
        errors[key] = _number(max(found)) if found else None
    return {"dtype": dtype, "mode": mode, "cases": runs, **errors, **_counts(outcomes)}


def _loss(loss: str, results: Results, dtypes: Sequence[str], modes: Sequence[str]) -> dict[str, Any]:
    ran = [run for run in results.ran if run.case.loss == loss]
    outcomes = [outcome for outcome in results.outcomes if outcome.run.case.loss == loss]
    rows = []
    for dtype, mode in itertools.product(dtypes, modes):
        runs = sum((run.dtype, run.mode) == (dtype, mode) for run in ran)
        if runs:
            here = [o for o in outcomes if (o.run.dtype, o.run.mode) == (dtype, mode)]
            rows.append(_row(dtype, mode, runs, here))
    return {
        "cases": len({run.case.id for run in ran}),
        "runs": len(ran),
        "skipped": sum(run.case.loss == loss for run in results.skipped),
        **_counts(outcomes),
        "rows": rows,
    }


def _mismatch(outcome: Outcome) -> dict[str, Any]:
    return {
        "loss": outcome.run.case.loss,
        "case": outcome.run.case.id,
        "dtype": outcome.run.dtype,
        "mode": outcome.run.mode,
        "what": outcome.what,
        "status": outcome.status,
        "max_abs_error": _number(outcome.max_abs_error),
        "max_rel_error": _number(outcome.max_rel_error),
        "report": outcome.report,
        "known_difference": None if outcome.known is None else outcome.known.description,
    }


def report(
    results: Results,
    *,
    environment: dict[str, Any],
    options: dict[str, Any],
    known: Iterable[KnownDifference],
) -> dict[str, Any]:
    """The JSON report of a run of the grid (its schema: docs/parity.md, "The JSON report").

    Args:
      results: what the run found.
      environment: see `environment`.
      options: ``losses``, ``dtypes``, ``modes`` (lists of names) and ``time_budget`` (seconds or ``None``).
      known: the known differences that apply to the installed torch.

    Returns:
      The report, a JSON-ready dict.
    """
    outcomes = results.outcomes
    return {
        "schema": SCHEMA,
        "passed": results.passed,
        "complete": not results.skipped,
        "environment": environment,
        "options": options,
        "losses": {loss: _loss(loss, results, options["dtypes"], options["modes"]) for loss in options["losses"]},
        "mismatches": [_mismatch(outcome) for outcome in outcomes if outcome.status != "passed"],
        "known_differences": [dataclasses.asdict(difference) for difference in known],
        "totals": {
            "cases": len({(run.case.loss, run.case.id) for run in results.ran}),
            "runs": len(results.ran),
            "skipped": len(results.skipped),
            **{key: value for key, value in _counts(outcomes).items() if key != "passed"},
            "seconds": round(results.seconds, 3),
        },
    }


def to_json(document: dict[str, Any]) -> str:
    """The report as JSON text."""
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def summary(document: dict[str, Any]) -> str:
    """One line: passed or failed, complete or not, and the totals."""
    totals = document["totals"]
    verdict = "parity passed" if document["passed"] else "parity FAILED"
    if not document["complete"]:
        budget = document["options"]["time_budget"]
        planned = totals["runs"] + totals["skipped"]
        verdict += f" (incomplete: time budget of {budget:g} s spent, {totals['skipped']} of {planned} runs skipped)"
    return (
        f"{verdict}: {totals['cases']} cases, {totals['runs']} runs, {totals['comparisons']} comparisons, "
        f"{totals['failures']} failures, {totals['known']} known differences, {totals['seconds']:.1f} s"
    )


def _error_text(value: float | str | None) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.3g}"


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["dtype"],
        row["mode"],
        str(row["cases"]),
        *(_error_text(row[key]) for key, *_ in _ERRORS),
        str(row["failures"]),
        str(row["known"]),
        "pass" if row["passed"] else "FAIL",
    ]


def _loss_heading(loss: str, summary: dict[str, Any]) -> str:
    if not summary["runs"]:
        return f"{loss}: not run" + (f" ({summary['skipped']} runs skipped)" if summary["skipped"] else "")
    skipped = f", {summary['skipped']} runs skipped" if summary["skipped"] else ""
    result = "passed" if summary["passed"] else "FAILED"
    return f"{loss}: {summary['cases']} cases, {summary['runs']} runs{skipped}: {result}"


def _where(environment: dict[str, Any]) -> str:
    return (
        f"jaxloss {environment['jaxloss']} against torch {environment['torch']}, with jax {environment['jax']} on "
        f"{environment['platform']} ({environment['device_kind']}), device 0 of {environment['device_count']}"
    )


def _mismatch_title(mismatch: dict[str, Any]) -> str:
    return f"{mismatch['case']} ({mismatch['dtype']}, {mismatch['mode']}): {mismatch['what']}, {mismatch['status']}"


def _difference_line(difference: dict[str, Any]) -> str:
    versions = ", ".join(difference["torch_versions"])
    cases = ", ".join(difference["case_ids"]) or "(no case of the grid)"
    return f"{difference['loss']} {cases}, {difference['what']} (torch {versions}): {difference['description']}"


def _text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns: the first two (dtype, mode) to the left, the numbers to the right."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    aligned = [
        [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        for row in rows
    ]
    return ["  " + "  ".join(cells) for cells in aligned]


def to_text(document: dict[str, Any], *, tables: bool = True) -> str:
    """The report for a terminal: a table per loss (if `tables`), every mismatch's report, the known differences
    of the installed torch, and the `summary` line."""
    lines = [_where(document["environment"])]
    if tables:
        for loss, loss_summary in document["losses"].items():
            lines += ["", _loss_heading(loss, loss_summary)]
            if loss_summary["rows"]:
                lines += _text_table([list(_HEADINGS), *map(_cells, loss_summary["rows"])])
    for mismatch in document["mismatches"]:
        lines += ["", mismatch["status"].upper() + " " + _mismatch_title(mismatch)]
        if mismatch["known_difference"] is not None:
            lines.append(f"  known difference: {mismatch['known_difference']}")
        lines += ["  " + line for line in mismatch["report"].splitlines()]
    differences = document["known_differences"]
    lines += ["", f"known differences of torch {document['environment']['torch']}: {len(differences) or 'none'}"]
    lines += ["  " + _difference_line(difference) for difference in differences]
    return "\n".join([*lines, "", summary(document)]) + "\n"


def _markdown_table(headings: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headings) + " |",
        "|" + "---|" * len(headings),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _option_text(value: Any) -> str:
    if value is None:
        return "none"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def to_markdown(document: dict[str, Any]) -> str:
    """The report as a Markdown page: summary, environment, options, a table of every loss, the mismatches with
    their reports, and the known differences of the installed torch."""
    environment, options = document["environment"], document["options"]
    lines = ["# jaxloss parity report", "", f"**{summary(document)}**", "", _where(environment) + "."]
    if not environment["torch_tested"]:
        lines += ["", f"Warning: untested torch {environment['torch']}; differences not listed may appear."]
    lines += ["", "## Environment", ""]
    lines += _markdown_table(("", ""), ([key, f"`{value}`"] for key, value in environment.items()))
    lines += ["", "## Options", ""]
    option_rows = ([key, _option_text(value)] for key, value in options.items())
    lines += _markdown_table(("", ""), option_rows)
    lines += ["", "## Losses", ""]
    loss_rows = (
        [f"`{loss}`", *_cells(row)] for loss, loss_summary in document["losses"].items() for row in loss_summary["rows"]
    )
    lines += _markdown_table(("loss", *_HEADINGS), loss_rows)
    not_run = [loss for loss, loss_summary in document["losses"].items() if not loss_summary["runs"]]
    if not_run:
        lines += ["", "Not run: " + ", ".join(f"`{loss}`" for loss in not_run) + "."]
    lines += ["", "## Mismatches", ""]
    for mismatch in document["mismatches"]:
        lines += [f"### {_mismatch_title(mismatch)}", ""]
        if mismatch["known_difference"] is not None:
            lines += [f"Known difference: {mismatch['known_difference']}", ""]
        lines += ["```text", mismatch["report"], "```", ""]
    if not document["mismatches"]:
        lines += ["None.", ""]
    lines += [f"## Known differences of torch {environment['torch']}", ""]
    lines += [f"- {_difference_line(difference)}" for difference in document["known_differences"]] or ["None."]
    return "\n".join(lines) + "\n"
