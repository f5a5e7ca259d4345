"""Lesson 5 (gradients by hand) runs, prints the softmax Jacobians with the right signs, and agrees with torch."""

import contextlib
import io
import json
import re

import numpy as np
import pytest

from experiments.lessons import lesson5_gradients


def _printed_array(line: str) -> np.ndarray:
    """The JAX value of a `show` line, ``label: value   (torch: ...)``, as an array."""
    value = re.search(r": (-?\d[\d.]*|\[[-\d., \[\]]*\])(?=   |$)", line.strip()).group(1)
    return np.array(json.loads(value))  # a number or nested list of numbers, as `side_by_side.as_text` prints it


@pytest.fixture(scope="module")
def output() -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        lesson5_gradients.main([])  # `show` asserts that JAX and torch agree on every number it prints with torch's
    return printed.getvalue()


def _lines(output: str, start: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip().startswith(start)]


def test_jacobians_have_the_softmax_signs_and_match_torch(output):
    jacobian_lines = _lines(output, "softmax Jacobian, a = ")
    assert [line.split(":")[0].strip() for line in jacobian_lines] == [
        "softmax Jacobian, a = [2.0, 1.0]",
        "softmax Jacobian, a = [2.0, 1.0, 0.1]",
    ]
    for line, size in zip(jacobian_lines, (2, 3), strict=True):
        jacobian = _printed_array(line)
        assert jacobian.shape == (size, size)
        assert (np.diag(jacobian) > 0).all(), line
        assert (jacobian[~np.eye(size, dtype=bool)] < 0).all(), line
        assert "(torch: " in line  # torch ran the same Jacobian, and `show` checked it


def test_gradients_by_hand(output):
    # The 2-class softmax: p = [e/(1+e), 1/(1+e)], dp_0/da_0 = p_0 p_1.
    p_0 = np.e / (1 + np.e)
    np.testing.assert_allclose(_printed_array(_lines(output, "p = softmax([2.0, 1.0])")[0]), [p_0, 1 - p_0], atol=5e-5)
    np.testing.assert_allclose(
        _printed_array(_lines(output, "vjp_fn([1, 0])")[0]), [p_0 * (1 - p_0), -p_0 * (1 - p_0)], atol=5e-5
    )
    # MSE of [1, 2, 3] against [1, 4, 9]: 2 (x - y) / n with the mean, 2 (x - y) with the sum.
    np.testing.assert_allclose(_printed_array(_lines(output, "d/dx mean")[0]), [0, -4 / 3, -4], atol=5e-5)
    np.testing.assert_allclose(_printed_array(_lines(output, "d/dx sum")[0]), [0, -4, -12], atol=5e-5)
    # The lesson's own printout: mse tensor(1.), autograd.grad(mse, [w]) (tensor([2.]),).
    assert _printed_array(_lines(output, "mse = ")[0]) == 1
    assert _printed_array(_lines(output, "d mse / dw")[0]).tolist() == [2]


def test_every_number_is_checked_against_torch(output):
    numbers = [line for line in output.splitlines() if re.match(r"\s+\S.*: [\[\d-]", line)]
    without_torch = [line for line in numbers if "(torch: " not in line]
    # Only the lines that have no torch counterpart: b's gradient when detached (torch: None) and the logits.
    assert all(line.strip().startswith(("d loss / db with b detached", "p = softmax([2.0")) for line in without_torch)
    assert len(numbers) - len(without_torch) >= 12
    assert "Trying to backward through the graph a second time" in output  # torch's retain_graph error, shown


def test_runs_without_torch(monkeypatch, capsys):
    monkeypatch.setattr(lesson5_gradients, "torch_installed", lambda: False)
    lesson5_gradients.main([])
    printed = capsys.readouterr().out
    assert "torch not installed" in printed and "(torch: " not in printed
    assert "softmax Jacobian, a = [2.0, 1.0, 0.1]" in printed


def test_command_line_help(capsys):
    with pytest.raises(SystemExit) as exited:
        lesson5_gradients.main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"usage: lesson5_gradients.py [-h]\n\n{lesson5_gradients.__doc__.splitlines()[0]}\n")
    assert "python experiments/lessons/lesson5_gradients.py" in printed  # the docstring's run command
    assert "1. MSE and its derivative" not in printed  # the lesson did not run


@pytest.mark.parametrize("argv", [["--bogus"], ["--epochs", "3"]])
def test_command_line_refuses_any_argument(argv, capsys):
    """The lesson takes no arguments (before, it ignored them and ran)."""
    with pytest.raises(SystemExit) as exited:
        lesson5_gradients.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr() == (
        "",
        f"lesson5_gradients.py: error: unrecognized arguments: {' '.join(argv)} (--help lists the arguments)\n",
    )
