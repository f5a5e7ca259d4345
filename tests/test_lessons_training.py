"""Lessons 3 and 4 run small: the network's loss and gradients, the optimizer and gradient accumulation.

Each lesson's `main()` runs on the offline digits (whatever `JAXLOSS_CIFAR10_DIR` says) with tiny settings. The
lessons check themselves against torch (`side_by_side.show` and their own asserts raise on disagreement); the
tests check what they print.
"""

import pathlib
import re
import subprocess
import sys

import pytest

from experiments import datasets
from experiments.lessons import lesson3_network_loss, lesson4_optimizer

ROOT = pathlib.Path(__file__).resolve().parents[1]

LAYERS = ("conv1", "conv2", "conv3", "dense1", "dense2")
NUMBER = r"(-?\d+\.\d+)"
GRADIENT_LINE = (
    r"\|grads\['params'\]\['(\w+)'\]\['(\w+)'\]\| +(\([\d, ]+\)): "
    + NUMBER
    + rf"   \(torch: {NUMBER}, \|difference\| / \|torch\| = (\S+)\)"
)


def test_lesson3_gradients_are_a_pytree_matching_torchs_grad(capsys):
    lesson3_network_loss.main(["--dataset", "digits", "--batch_sizes", "1", "8"])
    out = capsys.readouterr().out

    assert out.startswith("Data: scikit-learn's bundled handwritten digits")
    assert out.count("tudui.model1[0].weight.grad is None before backward(): True") == 2
    assert out.count("weight.grad is a Tensor of shape (32, 3, 5, 5) (OIHW)") == 2
    assert out.count("JAX has no .grad: gradients are return values.") == 2
    tree = "PyTreeDef({'params': {" + ", ".join(f"'{layer}': {{'bias': *, 'kernel': *}}" for layer in LAYERS) + "}})"
    assert out.count(tree) == 2
    for batch_size in (1, 8):
        loss, torch_loss = re.search(
            rf"CrossEntropyLoss of the batch of {batch_size}: {NUMBER}   \(torch: {NUMBER}\)", out
        ).groups()
        assert float(loss) == pytest.approx(float(torch_loss), abs=1e-4)  # 4 decimals; show() checked to 1e-5
    # Every layer's kernel and bias, with its Flax shape, next to torch's norm: 10 lines a batch.
    gradient_lines = re.findall(GRADIENT_LINE, out)
    assert len(gradient_lines) == 20
    assert {(layer, kind) for layer, kind, *_ in gradient_lines} == {
        (layer, kind) for layer in LAYERS for kind in ("bias", "kernel")
    }
    assert ("conv1", "kernel", "(5, 5, 3, 32)") in {line[:3] for line in gradient_lines}
    assert ("dense1", "kernel", "(1024, 64)") in {line[:3] for line in gradient_lines}
    # The lesson asserts |grad - torch_grad| <= 1e-2 |torch_grad| (max-pool near-ties on some CIFAR-10 batches);
    # on these digits every layer agrees to float32 rounding.
    assert all(float(norm) > 0 and float(difference) < 1e-5 for *_, norm, torch_norm, difference in gradient_lines)


def test_lesson3_runs_without_torch(capsys, monkeypatch):
    monkeypatch.setattr(lesson3_network_loss, "torch_installed", lambda: False)
    lesson3_network_loss.main(["--dataset", "digits", "--batch_sizes", "8"])
    out = capsys.readouterr().out

    assert "torch" not in out.replace("torch's are NCHW", "").replace("torch's loop", "")
    assert re.search(rf"CrossEntropyLoss of the batch of 8: {NUMBER}\n", out)
    assert len(re.findall(rf"\|grads\['params'\]\['\w+'\]\['\w+'\]\| +\([\d, ]+\): {NUMBER}\n", out)) == 10


def test_lesson4_sgd_epochs_and_accumulation_match_torch(capsys):
    lesson4_optimizer.main(
        [
            "--dataset",
            "digits",
            "--batch_size",
            "8",
            "--max_batches",
            "4",
            "--epochs",
            "3",
            "--learning_rates",
            "0.05",
            "--accumulate",
            "2",
        ]
    )
    out = capsys.readouterr().out

    assert "Training on the first 32 test images, batch 8, 3 epochs." in out
    # The first two steps' losses agree with torch's SGD (show() asserts it; step 2 runs on the updated weights).
    pair = rf"\[{NUMBER}, {NUMBER}\]"
    assert re.search(rf"epoch 0: the first 2 steps' losses: {pair}   \(torch: {pair}\)", out)
    # The lesson's print(running_loss) per epoch, next to torch's SGD from the same weights on the same batches.
    epochs = re.findall(rf"epoch (\d): running_loss: {NUMBER}   \(torch: {NUMBER}, relative difference (\S+)\)", out)
    assert [epoch for epoch, *_ in epochs] == ["0", "1", "2"]
    losses = [float(loss) for _, loss, *_ in epochs]
    # Float32 drift only (torch's thread count changes its rounding): ~1e-6 after a few steps.
    assert all(float(difference) < 1e-5 for *_, difference in epochs)
    assert losses[0] > losses[1] > losses[2], "the summed loss should fall epoch after epoch"

    # (a) The sum of the gradient pytrees equals torch's .grad after two backward() calls (asserted per entry).
    assert "torch: after zero_grad(), tudui.model1[0].weight.grad is None: True" in out
    assert "(a) jax.tree.map(jnp.add, ...) of the 2 gradient pytrees vs torch's .grad after 2 backward() calls" in out
    summed = re.findall(GRADIENT_LINE, out)
    assert len(summed) == 10
    assert all(float(difference) < 1e-5 for *_, difference in summed)
    # (b) MultiSteps holds the weights for k - 1 steps, then steps by the mean gradient, as torch's (loss / k).
    assert "(b) MultiSteps step 1 of 2: params unchanged, the gradient stored: True" in out
    assert (
        "(b) MultiSteps step 2 of 2: params - lr * mean(g_1, ..., g_2) = params - 0.05 / 2 * sum, checked "
        "against the formula and torch's SGD(lr=0.05).step() after 2 x (loss / 2).backward()"
    ) in out
    changes = re.findall(
        r"\|change of params\['params'\]\['\w+'\]\['\w+'\]\|: (\S+)   \(formula: (\S+), "
        r"torch: (\S+) relative difference\)",
        out,
    )
    assert len(changes) == 10
    for change, formula_difference, torch_difference in changes:
        assert float(change) > 0 and float(formula_difference) < 1e-3 and float(torch_difference) < 1e-3


def test_lesson4_rejects_an_unknown_dataset():
    with pytest.raises(SystemExit):
        lesson4_optimizer.main(["--dataset", "nonsense"])


# The command line: every argument explained by --help; a nonsensical value refused in one line naming the argument,
# with status 2 and before any data is loaded (before: a ValueError from deep in the input pipeline, an IndexError,
# a misleading AssertionError, or a run that silently did nothing, e.g. 0 epochs).
LESSON3_HELP = [
    "--dataset {auto,cifar10,digits} 'auto': CIFAR-10 when available",
    "--batch_sizes N [N ...] the batches to run, each > 0: the first N test images, one forward and backward pass "
    "each (default: [1, 64])",
    "--seed SEED seed of the network's initial weights (default: 0)",
]
LESSON4_HELP = [
    "--dataset {auto,cifar10,digits} 'auto': CIFAR-10 when available",
    "--batch_size BATCH_SIZE images per step, > 0; the lesson used 1 (default: 64)",
    "--epochs EPOCHS passes over the data, > 0; the lesson ran 20 (default: 3)",
    "--learning_rates LR [LR ...] SGD's learning rates, each finite and > 0",
    "(default: [0.01, 0.02])",
    "--max_batches N train on the first N > 0 batches only; None: all",
    "--accumulate K k > 0, the batches whose gradients are summed: at most the test split's number of batches "
    "(default: 3)",
    "--seed SEED seed of the network's initial weights (default: 0)",
]


@pytest.mark.parametrize(
    ("lesson", "expected"),
    [(lesson3_network_loss, LESSON3_HELP), (lesson4_optimizer, LESSON4_HELP)],
    ids=["lesson3", "lesson4"],
)
def test_command_line_help(lesson, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        lesson.main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    script = pathlib.Path(lesson.__file__).name
    assert printed.startswith(f"usage: {script} [-h] [--dataset {{auto,cifar10,digits}}]")
    words = " ".join(printed.split())  # the help's layout depends on the terminal's width
    assert " ".join(lesson.__doc__.split()) in words  # the whole docstring, with its run commands
    for line in expected:
        assert line in words


def refused(lesson, argv, monkeypatch, capsys) -> str:
    """What `lesson.main(argv)` prints on stderr when it exits with status 2, having loaded no data."""
    monkeypatch.setattr(datasets, "load_dataset", lambda name: pytest.fail("loaded data for a refused command line"))
    with pytest.raises(SystemExit) as exited:
        lesson.main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err  # one line
    return err


POSITIVE_INT = "expected an integer > 0"
POSITIVE_FLOAT = "expected a finite number > 0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch_sizes", "0"], f"argument --batch_sizes: {POSITIVE_INT}; got '0'"),
        (["--batch_sizes", "8", "-1"], f"argument --batch_sizes: {POSITIVE_INT}; got '-1'"),
        (["--batch_sizes", "2.5"], f"argument --batch_sizes: {POSITIVE_INT}; got '2.5'"),
        (["--batch_sizes"], "argument --batch_sizes: expected at least one argument"),
        (["--seed", "x"], "argument --seed: expected an integer; got 'x'"),
        (
            ["--dataset", "mnist"],
            "argument --dataset: invalid choice: 'mnist' (choose from 'auto', 'cifar10', 'digits')",
        ),
        (["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ],
)
def test_command_line_lesson3_refuses_nonsense(argv, message, monkeypatch, capsys):
    err = refused(lesson3_network_loss, argv, monkeypatch, capsys)
    assert err == f"lesson3_network_loss.py: error: {message} (--help lists the arguments)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch_size", "0"], f"argument --batch_size: {POSITIVE_INT}; got '0'"),
        (["--batch_size", "-3"], f"argument --batch_size: {POSITIVE_INT}; got '-3'"),
        (["--batch_size", "1.5"], f"argument --batch_size: {POSITIVE_INT}; got '1.5'"),
        (["--epochs", "0"], f"argument --epochs: {POSITIVE_INT}; got '0'"),
        (["--epochs", "-1"], f"argument --epochs: {POSITIVE_INT}; got '-1'"),
        (["--accumulate", "0"], f"argument --accumulate: {POSITIVE_INT}; got '0'"),
        (["--max_batches", "0"], f"argument --max_batches: {POSITIVE_INT}; got '0'"),
        (["--learning_rates", "nan"], f"argument --learning_rates: {POSITIVE_FLOAT}; got 'nan'"),
        (["--learning_rates", "0.01", "inf"], f"argument --learning_rates: {POSITIVE_FLOAT}; got 'inf'"),
        (["--learning_rates=-inf"], f"argument --learning_rates: {POSITIVE_FLOAT}; got '-inf'"),
        (["--learning_rates", "-0.1"], f"argument --learning_rates: {POSITIVE_FLOAT}; got '-0.1'"),
        (["--learning_rates", "0"], f"argument --learning_rates: {POSITIVE_FLOAT}; got '0'"),
        (["--learning_rates", "fast"], f"argument --learning_rates: {POSITIVE_FLOAT}; got 'fast'"),
        (["--seed", "1.5"], "argument --seed: expected an integer; got '1.5'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_command_line_lesson4_refuses_nonsense(argv, message, monkeypatch, capsys):
    err = refused(lesson4_optimizer, argv, monkeypatch, capsys)
    assert err == f"lesson4_optimizer.py: error: {message} (--help lists the arguments)\n"


def test_command_line_lesson4_refuses_more_accumulated_batches_than_the_data_holds(monkeypatch, capsys):
    """The 355 test digits make 6 batches of 64: k = 7 would never step (before: "MultiSteps' weights disagree")."""
    accumulated = []
    monkeypatch.setattr(lesson4_optimizer, "train", lambda *args: None)
    monkeypatch.setattr(lesson4_optimizer, "accumulation", lambda *args: accumulated.append(args[4:]))
    lesson4_optimizer.main(["--dataset", "digits", "--batch_size", "64", "--accumulate", "6"])
    assert accumulated == [(6, 64)]  # the most the digits hold

    with pytest.raises(SystemExit) as exited:
        lesson4_optimizer.main(["--dataset", "digits", "--batch_size", "64", "--accumulate", "7"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "lesson4_optimizer.py: error: argument --accumulate: expected at most 6, the batches of 64 in the 355 test "
        "images; got 7 (--help lists the arguments)\n"
    )


def test_command_line_lesson4_as_a_script_refuses_a_nan_learning_rate():
    result = subprocess.run(
        [sys.executable, "experiments/lessons/lesson4_optimizer.py", "--learning_rates", "nan"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "lesson4_optimizer.py: error: argument --learning_rates: expected a finite number > 0; got 'nan' "
        "(--help lists the arguments)\n"
    )
