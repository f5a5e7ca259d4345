"""``python -m jaxloss.parity``: the report, its exit status, known differences, the time budget, bad arguments.

Most tests run `main` in-process on a tiny grid of l1_loss cases (standing in for the regression family's), with
a jaxloss whose l1_loss is wrong at ties where they need a failure.
"""

import fnmatch
import json
import pathlib
import re
import subprocess
import sys
import types
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss.functional as F
from jaxloss.parity import LOSSES, Case, cases
from jaxloss.parity import _known_differences as known_differences
from jaxloss.parity._cli import main
from jaxloss.parity._known_differences import KnownDifference, is_tested, torch_version
from jaxloss.parity._run import plan

# Ties (input == target) at 0 and -2, where the gradient of |x - y| is torch's 0 and jnp.abs's 1.
TIES = {"input": np.array([0.0, 1.0, -2.0, 0.5]), "target": np.array([0.0, 0.5, -2.0, 1.0])}
TINY_GRID = [
    Case("l1_loss", f"l1_loss-ties-{reduction}", TIES, {"reduction": reduction}, grad=("input", "target"))
    for reduction in ("mean", "sum")
]


@pytest.fixture
def tiny_grid(monkeypatch):
    """The regression family's grid is `TINY_GRID`."""
    family = types.ModuleType("jaxloss.parity._regression")
    family.CASES = TINY_GRID
    monkeypatch.setitem(sys.modules, "jaxloss.parity._regression", family)


def abs_l1_loss(input, target, reduction="mean", weight=None):
    """l1_loss through `jnp.abs`, whose gradient at 0 is 1 where torch's is 0."""
    loss = jnp.abs(input - target)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def run(tmp_path, *options):
    """Runs the command with `options`, a JSON and a Markdown report: its status, the JSON, the Markdown."""
    json_path, markdown_path = tmp_path / "parity.json", tmp_path / "parity.md"
    status = main([*options, "--json", str(json_path), "--markdown", str(markdown_path)])
    return status, json.loads(json_path.read_text()), markdown_path.read_text()


def test_passing_run_prints_tables_and_writes_both_reports(tiny_grid, tmp_path, capsys):
    status, report, markdown = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32")
    out, err = capsys.readouterr()

    assert status == 0
    assert report["schema"] == 1 and report["passed"] and report["complete"]
    assert set(report["environment"]) == {
        "jaxloss", "jax", "jaxlib", "torch", "torch_tested", "numpy", "python", "backend", "platform",
        "device_kind", "device_count", "x64", "date", "command",
    }  # fmt: skip
    assert report["environment"]["torch"] == str(torch.__version__) and report["environment"]["torch_tested"]
    assert report["environment"]["command"].startswith("python -m jaxloss.parity --losses l1_loss --dtypes float32")
    assert report["options"] == {
        "losses": ["l1_loss"],
        "dtypes": ["float32"],
        "modes": ["eager", "jit"],
        "time_budget": None,
    }
    l1 = report["losses"]["l1_loss"]
    counts = ("cases", "runs", "skipped", "comparisons", "failures", "known")
    assert [l1[key] for key in counts] == [2, 4, 0, 12, 0, 0] and l1["passed"]
    assert [(row["dtype"], row["mode"], row["cases"], row["comparisons"]) for row in l1["rows"]] == [
        ("float32", "eager", 2, 6),
        ("float32", "jit", 2, 6),
    ]
    assert all(0 <= row["grad_max_abs_error"] < 1e-6 for row in l1["rows"])
    assert report["mismatches"] == [] and report["known_differences"] == []
    assert [report["totals"][key] for key in counts] == [2, 4, 0, 12, 0, 0]
    summary = "parity passed: 2 cases, 4 runs, 12 comparisons, 0 failures, 0 known differences"
    assert summary in out and summary in markdown
    assert err == "[1/4] l1_loss\n"  # the progress: a line as each loss starts
    assert "float32  eager" in out and "| `l1_loss` | float32 | eager | 2 |" in markdown


def test_wrong_gradient_fails_and_names_the_case(tiny_grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(F, "l1_loss", abs_l1_loss)
    status, report, markdown = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32", "--modes", "eager")
    out = capsys.readouterr().out

    assert status == 1 and not report["passed"] and not report["losses"]["l1_loss"]["passed"]
    failed = {(m["case"], m["what"], m["status"]) for m in report["mismatches"]}
    assert failed == {
        (case.id, what, "failed") for case in TINY_GRID for what in ("d/dinput", "d/dtarget")
    }  # the values agree: only the gradients at the ties differ
    mismatch = report["mismatches"][0]
    assert mismatch["report"].startswith("d/dinput (float32, eager): 2 of 4 elements differ")
    assert "beyond the tolerance at [0], [2]" in mismatch["report"]
    assert "FAILED l1_loss-ties-mean (float32, eager): d/dinput, failed" in out
    assert "parity FAILED" in out and "### l1_loss-ties-mean (float32, eager): d/dinput, failed" in markdown


def test_known_differences_of_the_installed_torch_turn_failures_into_known(tiny_grid, tmp_path, monkeypatch):
    monkeypatch.setattr(F, "l1_loss", abs_l1_loss)
    monkeypatch.setattr(torch, "__version__", "2.14.1+cu130")
    ties = KnownDifference(("2.14",), "l1_loss", ("l1_loss-ties-*",), "d/dinput", "2.14's subgradient at ties")
    not_this_torch = KnownDifference(("2.13", "2.14.0"), "l1_loss", ("*",), "*", "not for 2.14.1")
    monkeypatch.setattr(known_differences, "KNOWN_DIFFERENCES", (ties, not_this_torch))
    options = ("--losses", "l1_loss", "--dtypes", "float32", "--modes", "eager")

    status, report, _ = run(tmp_path, *options)
    assert status == 1  # d/dtarget is not a known difference
    assert {(m["what"], m["status"]) for m in report["mismatches"]} == {("d/dinput", "known"), ("d/dtarget", "failed")}
    assert report["known_differences"] == [
        {
            "torch_versions": ["2.14"],
            "loss": "l1_loss",
            "case_ids": ["l1_loss-ties-*"],
            "what": "d/dinput",
            "description": "2.14's subgradient at ties",
        }
    ]

    every_gradient = KnownDifference(("2.14",), "l1_loss", ("l1_loss-ties-*",), "*", "2.14's subgradient at ties")
    monkeypatch.setattr(known_differences, "KNOWN_DIFFERENCES", (every_gradient, not_this_torch))
    status, report, markdown = run(tmp_path, *options)
    assert status == 0 and report["passed"]
    assert {m["status"] for m in report["mismatches"]} == {"known"}
    assert (report["totals"]["failures"], report["totals"]["known"]) == (0, 4)
    assert all(m["known_difference"] == "2.14's subgradient at ties" for m in report["mismatches"])
    assert "## Known differences of torch 2.14.1+cu130" in markdown and "2.14's subgradient at ties" in markdown


def json_keys(value) -> set[str]:
    """Every key of every object in a JSON document, however deep (the per-loss names aside)."""
    if isinstance(value, dict):
        return {key for key in value if key not in LOSSES} | {k for v in value.values() for k in json_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in json_keys(v)}
    return set()


def test_docs_describe_every_field_of_the_json_report(tiny_grid, tmp_path, monkeypatch):
    """docs/parity.md's "The JSON report" names every field a report has, failures and known differences included."""
    monkeypatch.setattr(F, "l1_loss", abs_l1_loss)
    monkeypatch.setattr(torch, "__version__", "2.14.1+cu130")
    ties = KnownDifference(("2.14",), "l1_loss", ("l1_loss-ties-*",), "d/dinput", "2.14's subgradient at ties")
    monkeypatch.setattr(known_differences, "KNOWN_DIFFERENCES", (ties,))
    _, report, _ = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32", "--modes", "eager")
    assert {m["status"] for m in report["mismatches"]} == {"known", "failed"} and report["known_differences"]

    page = (pathlib.Path(__file__).parents[1] / "docs" / "parity.md").read_text()
    section = page.split("### The JSON report")[1].split("\n## ")[0]
    described = set(re.findall(r"`(\w+)`", section))
    assert json_keys(report) - described == set()


def test_untested_torch_warns_and_runs(tiny_grid, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.15.0.dev20260101+cu130")
    status, report, markdown = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32", "--modes", "eager")
    assert status == 0 and not report["environment"]["torch_tested"]
    warning = "untested torch 2.15.0.dev20260101+cu130; differences not listed may appear"
    assert "warning: " + warning in capsys.readouterr().err and warning in markdown


def test_plan_runs_loss_by_loss_in_the_dtypes_and_modes_of_each_case():
    first, second = TINY_GRID
    mse = Case("mse_loss", "mse_loss-ties-mean", TIES, dtypes=("float64",), modes=("jit",))
    runs = plan([first, mse, second], ["float64", "float32"], ["jit", "eager"])
    assert [(run.case.id, run.dtype, run.mode) for run in runs] == [
        *(
            (case.id, dtype, mode)
            for case in TINY_GRID
            for dtype in ("float64", "float32")
            for mode in ("jit", "eager")
        ),
        ("mse_loss-ties-mean", "float64", "jit"),
    ]


def test_time_budget_stops_early_and_marks_the_report_incomplete(tiny_grid, tmp_path, capsys):
    status, report, markdown = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32", "--time-budget", "1e-9")
    assert status == 0 and report["passed"] and not report["complete"]
    assert report["options"]["time_budget"] == 1e-9
    assert (report["totals"]["runs"], report["totals"]["skipped"]) == (1, 3)  # the first run always starts
    assert report["losses"]["l1_loss"]["skipped"] == 3
    summary = "parity passed (incomplete: time budget of 1e-09 s spent, 3 of 4 runs skipped): 1 cases, 1 runs"
    assert summary in capsys.readouterr().out and summary in markdown


def test_an_exception_is_a_failure_and_warnings_are_silenced(tiny_grid, tmp_path, monkeypatch):
    l1_loss = F.l1_loss

    def warning_l1_loss(input, target, reduction="mean", weight=None):
        warnings.warn("l1_loss warns by design", UserWarning, stacklevel=2)  # pytest makes warnings errors
        if reduction == "sum":
            raise FloatingPointError("sum is broken")
        return l1_loss(input, target, reduction)

    monkeypatch.setattr(F, "l1_loss", warning_l1_loss)
    status, report, _ = run(tmp_path, "--losses", "l1_loss", "--dtypes", "float32", "--modes", "jit")
    assert status == 1
    [mismatch] = report["mismatches"]
    assert (mismatch["case"], mismatch["what"], mismatch["status"]) == ("l1_loss-ties-sum", "error", "failed")
    assert mismatch["report"] == "error (float32, jit): FloatingPointError: sum is broken"
    assert report["losses"]["l1_loss"]["comparisons"] == 4  # mean's value and two gradients, and sum's error


@pytest.mark.parametrize(
    "options, message",
    [
        (["--losses", "l1_loss,l1_los"], "argument --losses: unknown loss 'l1_los'; expected comma-separated"),
        (["--dtypes", "float8"], "argument --dtypes: unknown dtype 'float8'; expected comma-separated names from"),
        (["--modes", "pmap"], "argument --modes: unknown mode 'pmap'"),
        (["--time-budget", "0"], "argument --time-budget: expected a number of seconds > 0, got '0'"),
        (["--json", "/no/such/dir/parity.json"], "argument --json: the directory of '/no/such/dir/parity.json'"),
        (["--losses", "l1_loss", "--dtypes", "float16"], "no case of l1_loss runs in float16 and eager, jit"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tiny_grid, options, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(options)
    assert exit.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "missing, message",
    [
        ("torch", "error: jaxloss.testing compares with torch, which is not installed: pip install"),
        ("jaxloss.parity._regression", "error: cannot build the parity grid: import of jaxloss.parity._regression"),
    ],
)
def test_environment_problems_are_one_error_line(missing, message, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # `import` raises ModuleNotFoundError
    assert main(["--losses", "l1_loss"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize(
    "text, version, tested",
    [
        ("2.13.0+cpu", (2, 13, 0), True),
        ("2.14.1+cu130", (2, 14, 1), True),
        ("2.14", (2, 14, 0), True),
        ("2.15.0.dev20260101+cu130", (2, 15, 0), False),
        ("2.12.0a0+git1234", (2, 12, 0), False),
    ],
)
def test_torch_version(text, version, tested):
    assert torch_version(text) == version and is_tested(version) == tested


def test_known_difference_validation():
    with pytest.raises(ValueError, match="cannot read torch's version 'nightly'"):
        torch_version("nightly")
    with pytest.raises(ValueError, match="`torch_versions` holds '2.14.x', expected a release"):
        KnownDifference(("2.14.x",), "l1_loss", ("*",), "*", "d")
    with pytest.raises(ValueError, match="`case_ids` must be a tuple of strings, got 'l1_loss-'"):
        KnownDifference(("2.14",), "l1_loss", "l1_loss-", "*", "d")
    with pytest.raises(ValueError, match="`loss` must be one of jaxloss.parity.LOSSES, got 'l1'"):
        KnownDifference(("2.14",), "l1", ("*",), "*", "d")
    difference = KnownDifference(("2.14.1",), "l1_loss", ("*-mean",), "value", "d")
    assert difference.applies_to((2, 14, 1)) and not difference.applies_to((2, 14, 2))
    assert difference.explains("l1_loss", "l1_loss-ties-mean", "value")
    assert not difference.explains("l1_loss", "l1_loss-ties-mean", "value[0]")
    assert not difference.explains("l1_loss", "l1_loss-ties-sum", "value")
    gradients = KnownDifference(("2.14",), "l1_loss", ("*",), "d/d*", "d")
    assert gradients.explains("l1_loss", "l1_loss-ties-sum", "d/dinput")
    assert not gradients.explains("l1_loss", "l1_loss-ties-sum", "value")
    for_the_record = KnownDifference(("2.14",), "l1_loss", (), "an option", "d")  # no case of the grid shows it
    assert not for_the_record.explains("l1_loss", "l1_loss-ties-sum", "an option")


def test_torch_2_14_known_differences_match_cases_of_the_grid():
    """Each pattern of the real table names cases of the grid: a renamed case cannot silently drop out of it."""
    ids = [case.id for case in cases()]
    for difference in known_differences.KNOWN_DIFFERENCES:
        for pattern in difference.case_ids:
            assert [i for i in ids if fnmatch.fnmatchcase(i, pattern) and i.startswith(difference.loss)], pattern


def test_module_entry_point(tmp_path):
    """The real grid of l1_loss, in a process of its own as CI runs it; one case of it, for the suite's time."""
    json_path = tmp_path / "parity.json"
    command = [sys.executable, "-m", "jaxloss.parity", "--losses", "l1_loss", "--dtypes", "float32", "--quiet"]
    done = subprocess.run([*command, "--time-budget", "1e-9", "--json", str(json_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(json_path.read_text())
    assert report["passed"] and (report["totals"]["runs"], report["totals"]["failures"]) == (1, 0)
    assert report["totals"]["skipped"] > 0 and not report["complete"]
    assert done.stdout.splitlines()[-1].startswith("parity passed (incomplete: ")
    assert "dtype" not in done.stdout and done.stderr == ""  # --quiet: no tables, no progress
