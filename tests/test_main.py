"""The command line (`experiments/main.py`): an error the user can fix is one line on stderr and a non-zero exit,
without a traceback; a bug keeps its traceback."""

import errno
import os
import pathlib
import subprocess
import sys

import jax
import pytest
from absl import flags
from test_train import small_config, synthetic_dataset

from experiments import checkpointing, errors, train

# Importing the command line (experiments.cli) loads the default --config file, which ml_collections 1.1 does
# with importlib's deprecated `load_module`: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:the load_module\\(\\) method is deprecated:DeprecationWarning")

REPO = pathlib.Path(__file__).parents[1]

# Each runs `python experiments/main.py` on the offline digits; each stops before loading them.
COMMAND_LINES = {
    # ml_collections applies an override while experiments.cli defines --config (the default file) ...
    "unknown config field": (
        ["--config.batch_sze=8"],
        "error: --config.batch_sze names no field of the config; did you mean --config.batch_size?",
    ),
    # ... or while absl parses the flags (a file given with --config).
    "unknown field of a config file": (
        ["--config=experiments/configs/default.py", "--config.distributed.enabld=True"],
        "error: --config.distributed.enabld names no field of the config; did you mean --config.distributed.enabled?",
    ),
    "unknown compute dtype": (
        ["--config.compute_dtype=float16"],
        "error: config.compute_dtype must be one of ('float32', 'bfloat16'); got 'float16'",
    ),
}


@pytest.fixture(scope="module")
def finished_command_lines(tmp_path_factory):
    """The `COMMAND_LINES`, run in parallel: name -> the finished process (its stderr read)."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, "experiments/main.py", f"--workdir={tmp_path_factory.mktemp('run')}", "--dataset=digits"]
            + ["--compilation_cache_dir="]
            + arguments,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (arguments, _) in COMMAND_LINES.items()
    }
    for process in processes.values():
        process.stderr_text = process.communicate(timeout=180)[1]
    return processes


@pytest.mark.parametrize("name", COMMAND_LINES)
def test_a_bad_command_line_is_one_line_on_stderr(finished_command_lines, name):
    process = finished_command_lines[name]
    assert process.returncode == 1, process.stderr_text
    assert "Traceback" not in process.stderr_text
    assert process.stderr_text.splitlines()[-1] == COMMAND_LINES[name][1]


@pytest.fixture
def command_line(tmp_path, monkeypatch):
    """Runs `main.main` after parsing the given flags (--workdir: tmp_path/run), with `config` (or `small_config()`)."""
    from experiments import cli, main

    def run(*arguments, config=None):
        flags.FLAGS(["main.py", f"--workdir={tmp_path / 'run'}", "--compilation_cache_dir=", *arguments])
        monkeypatch.setattr(cli, "config_from_flags", lambda: config or small_config())
        try:
            main.main(["main.py"])
        finally:
            flags.FLAGS.unparse_flags()

    return run


def status_and_line(stopped: pytest.ExceptionInfo, capsys) -> tuple[int, str]:
    """The exit status and the last line on stderr of a command line stopped by `SystemExit`."""
    code = stopped.value.code
    if isinstance(code, str):  # sys.exit(line): Python prints the line on stderr as it exits, with status 1
        return 1, code
    return code, capsys.readouterr().err.splitlines()[-1]


def test_cpu_devices_after_jax_started(command_line, capsys):
    jax.devices()  # JAX has started: its devices are fixed
    with pytest.raises(SystemExit) as stopped:
        command_line("--cpu_devices=3")
    assert status_and_line(stopped, capsys) == (
        1,
        f"error: --cpu_devices=3: JAX has already started, with {jax.device_count()} device(s), and cannot make "
        "others; give --cpu_devices to a new process",
    )


def test_more_devices_than_jax_sees(command_line, capsys):
    count = jax.device_count()
    with pytest.raises(SystemExit) as stopped:
        command_line(config=small_config(num_devices=count + 1))
    status, line = status_and_line(stopped, capsys)
    assert status == 1
    assert line.startswith("error: config.num_devices must be in") and line.endswith(f"got {count + 1}")


def test_a_full_disk_names_the_workdir_and_says_to_resume(command_line, capsys, monkeypatch, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full, whose writes fail with ENOSPC")

    def train_onto_a_full_disk(*args, **kwargs):
        with open("/dev/full", "w") as file:  # as MetricsFile.append does
            file.write("{}\n")
            file.flush()

    monkeypatch.setattr(train, "train_and_evaluate", train_onto_a_full_disk)
    with pytest.raises(SystemExit) as stopped:
        command_line()
    assert status_and_line(stopped, capsys) == (
        1,
        f"error: the disk is full: no space left on the device to write in {tmp_path / 'run'}. Free some space, "
        "then continue the run with --resume.",
    )


def test_a_full_disk_names_the_file_when_it_is_known(capsys):
    with pytest.raises(SystemExit) as stopped:
        with errors.exit_on_user_errors("runs/x", resumable=False):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "runs/x/metrics.jsonl")
    assert status_and_line(stopped, capsys) == (
        1,
        "error: the disk is full: no space left on the device to write runs/x/metrics.jsonl. Free some space, "
        "then run again with a new --workdir.",
    )


def test_another_system_error_gives_its_reason_and_path(capsys):
    with pytest.raises(SystemExit) as stopped:
        with errors.exit_on_user_errors("runs/x", resumable=True):
            open("/nonexistent/metrics.jsonl")
    assert status_and_line(stopped, capsys) == (1, "error: No such file or directory: /nonexistent/metrics.jsonl")


def test_a_run_error_gives_its_exit_code(command_line, capsys, monkeypatch):
    class Stopped(errors.RunError):
        exit_code = 143  # as a run stopped by SIGTERM (experiments.train.Interrupted)

    def stopped_run(*args, **kwargs):
        raise Stopped("stopped at step 5\nContinue it with --resume.")

    monkeypatch.setattr(train, "train_and_evaluate", stopped_run)
    with pytest.raises(SystemExit) as stopped:
        command_line()
    assert status_and_line(stopped, capsys) == (143, "error: stopped at step 5 Continue it with --resume.")


def test_a_bug_keeps_its_traceback(command_line, capsys, monkeypatch):
    def buggy(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(train, "train_and_evaluate", buggy)
    with pytest.raises(KeyError, match="a bug"):
        command_line()


def test_resuming_with_other_settings(command_line, capsys, monkeypatch, tmp_path):
    # A checkpoint of step 6 of the small run, made without training (its arrays: the initial ones).
    dataset = synthetic_dataset()
    steps = train.make_steps(small_config())
    params = train.initial_params(train.seed_keys(0)[0])
    checkpointer = checkpointing.Checkpointer(tmp_path / "run", max_to_keep=1)
    progress = {"step": 6, "epoch": 2, "batch": 0, "summed_loss": 0.0, "train_seconds": 1.0, "elapsed_seconds": 1.0}
    identity = train._identity(small_config(), dataset)
    checkpointer.save(6, {"params": params, "opt_state": steps.optimizer.init(params)}, {"run": identity, **progress})
    checkpointer.close()

    monkeypatch.setattr(train, "load_data", lambda config: dataset)
    with pytest.raises(SystemExit) as stopped:
        command_line("--resume", config=small_config(learning_rate=0.02))
    status, line = status_and_line(stopped, capsys)
    assert status == 1
    assert line.startswith("error: cannot resume the run checkpointed at step 6") and "0.01 then, 0.02 now" in line
