"""Lessons 1 and 2 run and print the original lessons' numbers, with torch side by side.

The lessons' `show` checks every number against torch; these tests check that the numbers the original torch
lessons printed appear, and that the lessons still run where torch is not installed.
"""

import importlib.machinery
import importlib.util
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

from experiments.lessons import lesson1_losses, lesson2_survey, side_by_side

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The torch lessons' own printouts (documentation checks): L1Loss mean/sum and MSELoss on [1, 2, 3] vs [1, 2, 5],
# CrossEntropyLoss on [[0.1, 0.2, 0.3]] with class 1.
LESSON1_PRINTED = [
    "L1Loss(reduction='mean'): 0.6667",
    "L1Loss(reduction='sum'): 2.0000",
    "MSELoss(reduction='mean'): 1.3333",
    "CrossEntropyLoss(): 1.1019",
]
# The survey's L1Loss 1.0, SmoothL1Loss 0.625 and MSELoss 1.5 on ones(2, 2) vs [[0, 1], [2, 3]].
LESSON2_PRINTED = ["jaxloss.nn: 1.0000", "jaxloss.nn: 0.6250", "jaxloss.nn: 1.5000"]


def test_lesson1_prints_the_lessons_numbers_next_to_torch(capsys):
    lesson1_losses.main([])
    printed = capsys.readouterr().out
    for expected in LESSON1_PRINTED:
        assert f"{expected}   (torch: " in printed
    assert "[the lesson printed tensor(1.1019)]" in printed
    assert "torch:   RuntimeError: mean(): could not infer output dtype" in printed
    integer_error = "l1_loss: `input` or `target` must be a floating-point array; got dtypes int32 and int32."
    assert f"jaxloss: TypeError: {integer_error}" in printed
    # The gradient value_and_grad returns, checked by `show` against the .grad that torch's backward() fills.
    assert "CrossEntropyLoss() loss 1.1019, d loss / d inputs: [[ 0.3006, -0.6678, 0.3672]]   (torch: " in printed


def test_lesson2_prints_the_survey_next_to_torch(capsys):
    lesson2_survey.main([])
    printed = capsys.readouterr().out
    for expected in LESSON2_PRINTED:
        assert f"{expected}   (torch: " in printed
    for name in ["CrossEntropyLoss", "NLLLoss (N, C, d)", "BCELoss", "BCEWithLogitsLoss", "MultiLabelSoftMarginLoss"]:
        assert f"\n{name}" in printed
    assert printed.count("by hand (jax.numpy)") == 9
    assert "TF's formula in JAX" in printed
    if importlib.util.find_spec("tensorflow") is None:
        assert "TensorFlow is not installed: skipping" in printed


def numpy_tensorflow() -> types.ModuleType:
    """A stand-in `tensorflow` whose two tf.nn cross-entropies follow TF's documentation, computed in NumPy."""

    def sigmoid_cross_entropy_with_logits(labels, logits):
        return types.SimpleNamespace(numpy=lambda: np.logaddexp(0.0, logits) - logits * labels)

    def softmax_cross_entropy_with_logits(labels, logits):
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        return types.SimpleNamespace(numpy=lambda: -np.sum(labels * log_probs, axis=-1))

    tensorflow = types.ModuleType("tensorflow")
    tensorflow.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)
    tensorflow.__version__ = "numpy stand-in"
    tensorflow.nn = types.SimpleNamespace(
        sigmoid_cross_entropy_with_logits=sigmoid_cross_entropy_with_logits,
        softmax_cross_entropy_with_logits=softmax_cross_entropy_with_logits,
    )
    return tensorflow


def test_lesson2_compares_with_tensorflow_where_installed(monkeypatch, capsys):
    """The branch that calls tf.nn (TensorFlow is not a dependency, so CI would otherwise never run it)."""
    if importlib.util.find_spec("tensorflow") is None:
        monkeypatch.setitem(sys.modules, "tensorflow", numpy_tensorflow())
    lesson2_survey.main([])
    printed = capsys.readouterr().out

    assert "\nTensorFlow " in printed and " itself:\n" in printed
    assert "tf.nn.sigmoid_cross_entropy_with_logits (agrees with the formula): [[1.1711, 0.1269, 0.2633], " in printed
    assert "tf.nn.softmax_cross_entropy_with_logits (agrees with the formula): [0.5599]" in printed


@pytest.mark.parametrize("lesson", [lesson1_losses, lesson2_survey])
def test_lessons_run_without_torch(lesson, monkeypatch, capsys):
    monkeypatch.setattr(side_by_side, "torch_installed", lambda: False)
    lesson.main([])
    printed = capsys.readouterr().out
    assert "torch not installed" in printed
    assert "(torch: " not in printed
    assert ("0.6667" if lesson is lesson1_losses else "0.6250") in printed


def test_lesson1_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "experiments/lessons/lesson1_losses.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "[the lesson printed tensor(0.6667)]" in result.stdout


# The command line. Lessons 1 and 2 take no arguments and side_by_side is no lesson: ``--help`` prints the
# docstring without running anything, and any argument is refused in one line (before, both were ignored and the
# lesson ran).
@pytest.mark.parametrize("module", [lesson1_losses, lesson2_survey, side_by_side], ids=lambda m: m.__name__)
def test_command_line_help(module, capsys):
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    script = pathlib.Path(module.__file__).name
    assert printed.startswith(f"usage: {script} [-h]\n\n{module.__doc__.splitlines()[0]}\n")
    assert f"python experiments/lessons/{script}" in printed  # the docstring's run command
    assert "(JAX " not in printed and "(torch: " not in printed  # the lesson did not run


@pytest.mark.parametrize("argv", [["--bogus"], ["--batch_size", "8"], ["extra"]], ids=["flag", "option", "value"])
@pytest.mark.parametrize("module", [lesson1_losses, lesson2_survey, side_by_side], ids=lambda m: m.__name__)
def test_command_line_refuses_any_argument(module, argv, capsys):
    with pytest.raises(SystemExit) as exited:
        module.main(argv)
    assert exited.value.code == 2
    script = pathlib.Path(module.__file__).name
    assert capsys.readouterr() == (
        "",
        f"{script}: error: unrecognized arguments: {' '.join(argv)} (--help lists the arguments)\n",
    )


def test_command_line_side_by_side_lists_the_lessons(capsys):
    side_by_side.main([])
    printed = capsys.readouterr().out
    assert printed.startswith("side_by_side.py is the lessons' helper, not a lesson.")
    for script in sorted(path.name for path in (ROOT / "experiments" / "lessons").glob("lesson*.py")):
        assert f"\n    python experiments/lessons/{script}\n" in printed


@pytest.mark.parametrize(
    "script",
    [
        "lesson1_losses.py",
        "lesson2_survey.py",
        "lesson3_network_loss.py",
        "lesson4_optimizer.py",
        "lesson5_gradients.py",
        "side_by_side.py",
    ],
)
def test_command_line_help_of_every_script(script):
    """``python experiments/lessons/<script> --help`` as a user types it: the usage, status 0, nothing run."""
    result = subprocess.run(
        [sys.executable, f"experiments/lessons/{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"usage: {script} [-h]")
    assert f"python experiments/lessons/{script}" in result.stdout  # the docstring, with its run command
    assert "options:\n  -h, --help" in result.stdout
