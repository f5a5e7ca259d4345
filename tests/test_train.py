"""The experiment (`experiments/`) on a tiny synthetic dataset: it learns, reports (the config as hyperparameters
too), refuses to overwrite, stops at a NaN, and resumes a run killed mid-epoch to bitwise the result of an
uninterrupted run. It refuses a config that cannot work before writing anything, a second run in a workdir in use,
and a resume that would drop epoch records; SIGINT and SIGTERM stop it with a checkpoint it resumes from."""

import dataclasses
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags
from test_metric_writers import hparams_of, scalars_of, tensorboard_events

from experiments import checkpointing, datasets, input_pipeline, plotting, reporting, train
from experiments.configs import default
from experiments.errors import RunError

# Importing the command line (experiments.cli) loads the default --config file, which ml_collections 1.1 does
# with importlib's deprecated `load_module`: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:the load_module\\(\\) method is deprecated:DeprecationWarning")

REPO = pathlib.Path(__file__).parents[1]
NUM_CLASSES = 10


def synthetic_dataset(train_size: int = 44, test_size: int = 20) -> datasets.ImageDataset:
    """A learnable 10-class problem: each class a fixed random 32x32x3 image, plus noise."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(NUM_CLASSES, 32, 32, 3))

    def sample(size):
        labels = rng.integers(0, NUM_CLASSES, size=size).astype(np.int32)
        noise = rng.integers(-40, 41, size=(size, 32, 32, 3))
        return np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8), labels

    train_images, train_labels = sample(train_size)
    test_images, test_labels = sample(test_size)
    return datasets.ImageDataset(
        name="synthetic",
        description="synthetic test data",
        class_names=[str(label) for label in range(NUM_CLASSES)],
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
    )


def small_config(**overrides):
    # 44 images in batches of 8: 6 steps per epoch, the last one padded. Checkpoints at steps 4, 8, 16
    # (mid-epoch) and 6, 12, 18 (epoch ends).
    config = default.get_config()
    config.update({"batch_size": 8, "num_epochs": 3, "checkpoint_every_steps": 4, "log_every_steps": 2, **overrides})
    return config


def without_timing(records):
    return [{key: value for key, value in record.items() if key not in reporting.TIMING_KEYS} for record in records]


def assert_trees_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e), strict=True)


def tensorboard_hparams(config) -> dict:
    """`config` as TensorBoard's HParams hold it: numbers as floats, unset fields left out."""
    return {
        name: float(value) if isinstance(value, int) and not isinstance(value, bool) else value
        for name, value in reporting.config_hparams(config).items()
        if value is not None
    }


def assert_reported_to_tensorboard(workdir: pathlib.Path, config, records: list[dict]) -> None:
    """`workdir`'s TensorBoard run holds `config` as hyperparameters, the logged losses and every epoch record."""
    events = tensorboard_events(workdir / reporting.TENSORBOARD_DIR)
    assert hparams_of(events) == [tensorboard_hparams(config)]
    scalars = scalars_of(events)
    last_step = records[-1]["step"]
    steps = range(config.log_every_steps, last_step + 1, config.log_every_steps)
    assert sorted(step for tag, step in scalars if tag == "train/loss") == list(steps)
    for record in records:
        for key, value in reporting.epoch_scalars(record).items():
            assert scalars[key, record["step"]] == pytest.approx(value, rel=1e-6), key


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return workdir, train.train_and_evaluate(small_config(), workdir, dataset=dataset)


def test_a_short_run_learns_and_reports(uninterrupted, capsys):
    workdir, result = uninterrupted
    records = reporting.read_metrics(workdir)
    assert result.step == 18 and result.records == records
    assert [record["epoch"] for record in records] == [1, 2, 3]
    assert [record["step"] for record in records] == [6, 12, 18]
    for record in records:
        assert set(record) == {
            "epoch",
            "step",
            "summed_loss",
            "mean_loss",
            "test_loss",
            "test_accuracy",
            "images_per_second",
            "epoch_seconds",
            "elapsed_seconds",
        }
        assert all(np.isfinite(value) for value in record.values())
        assert record["mean_loss"] == pytest.approx(record["summed_loss"] / 6)
    assert records[-1]["mean_loss"] < records[0]["mean_loss"]
    assert records[-1]["test_loss"] < records[0]["test_loss"]

    assert_reported_to_tensorboard(workdir, small_config(), records)

    png = (workdir / train.PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_mixed_precision_run_learns(dataset, tmp_path):
    result = train.train_and_evaluate(small_config(compute_dtype="bfloat16"), tmp_path, dataset=dataset)
    assert result.records[-1]["mean_loss"] < result.records[0]["mean_loss"]
    assert {leaf.dtype for leaf in jax.tree.leaves((result.params, result.opt_state))} == {np.dtype(np.float32)}


def test_an_unknown_compute_dtype_is_refused(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"compute_dtype must be one of \('float32', 'bfloat16'\); got 'float16'"):
        train.train_and_evaluate(small_config(compute_dtype="float16"), tmp_path, dataset=dataset)


def test_refuses_to_overwrite_a_run(uninterrupted, dataset):
    workdir, _ = uninterrupted
    before = (workdir / reporting.METRICS_FILE).read_text()
    with pytest.raises(FileExistsError, match="already holds a run: continue it with --resume"):
        train.train_and_evaluate(small_config(), workdir, dataset=dataset)
    assert (workdir / reporting.METRICS_FILE).read_text() == before


def test_command_line_refuses_to_overwrite_and_takes_shorthand_flags(uninterrupted, capsys):
    from experiments import cli, main  # defines the command line's flags

    workdir, _ = uninterrupted
    try:
        flags.FLAGS(["main.py", f"--workdir={workdir}", "--seed=7", "--dataset=digits", "--compilation_cache_dir="])
        config = cli.config_from_flags()
        assert (config.seed, config.dataset, config.learning_rate, config.batch_size) == (7, "digits", 0.01, 64)
        with pytest.raises(SystemExit) as exited:
            main.main(["main.py"])
        # One line, "error: ...", as the exit's message or on stderr; a non-zero status.
        assert exited.value.code not in (0, None)
        assert f"error: {workdir} already holds a run" in f"{exited.value.code}\n{capsys.readouterr().err}"
    finally:
        flags.FLAGS.unparse_flags()


# The run the test kills: it trains in its own process (on the same data and settings) and SIGKILLs itself when
# it is about to take step 14 (epoch 3, batch 2), once the checkpoint of step 12 has been committed.
KILLED_RUN = """
import os, pathlib, signal, sys, time
from experiments import checkpointing, train
from experiments import train_steps
from test_train import small_config, synthetic_dataset

workdir = pathlib.Path(sys.argv[1])
make_train_step = train_steps.make_train_step

def make_killed_train_step(model, optimizer):
    step_fn, calls = make_train_step(model, optimizer), 0
    def killed_train_step(*args):
        nonlocal calls
        calls += 1
        if calls == 14:
            while 12 not in checkpointing.checkpoint_steps(workdir):
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        return step_fn(*args)
    return killed_train_step

train_steps.make_train_step = make_killed_train_step
train.train_and_evaluate(small_config(), workdir, dataset=synthetic_dataset())
"""


def test_resume_after_a_kill_mid_epoch_gives_the_uninterrupted_result(uninterrupted, dataset, tmp_path):
    _, expected = uninterrupted
    workdir = tmp_path / "run"
    python_path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path},
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Another process with the same seed computed the same numbers.
    assert without_timing(reporting.read_metrics(workdir)) == without_timing(expected.records[:2])

    # As if the kill had come while the epoch-end checkpoint of step 12 was being written: the newest complete
    # one is then step 8's (epoch 2, batch 2), and the metrics file holds epoch 2's record, which must go.
    assert checkpointing.checkpoint_steps(workdir)[-2:] == [8, 12]
    (workdir / checkpointing.CHECKPOINT_DIR / "12").rename(workdir / "step 12, never committed")
    # Resumed twice: to the end of epoch 2 (from the middle), then for one more epoch (from an epoch's end).
    train.train_and_evaluate(small_config(num_epochs=2), workdir, resume=True, dataset=dataset)
    assert checkpointing.checkpoint_steps(workdir)[-1] == 12
    resumed = train.train_and_evaluate(small_config(), workdir, resume=True, dataset=dataset)

    assert resumed.step == expected.step
    assert_trees_equal(resumed.params, expected.params)
    assert_trees_equal(resumed.opt_state, expected.opt_state)
    assert without_timing(reporting.read_metrics(workdir)) == without_timing(expected.records)
    # TensorBoard is told to hide the events after the step each run resumed from (tensorboardX's purge_step).
    events = tensorboard_events(workdir / reporting.TENSORBOARD_DIR)
    assert [event.step for event in events if event.HasField("session_log")] == [1, 9, 13]
    # Each of the three runs wrote its config, the resumable settings as it had them.
    assert hparams_of(events) == [
        tensorboard_hparams(small_config()),
        tensorboard_hparams(small_config(num_epochs=2)),
        tensorboard_hparams(small_config()),
    ]


def test_resume_refuses_other_settings(uninterrupted, dataset):
    workdir, _ = uninterrupted
    with pytest.raises(ValueError, match=r"learning_rate: 0.01 then, 0.02 now"):
        train.train_and_evaluate(small_config(learning_rate=0.02), workdir, resume=True, dataset=dataset)


def test_a_nan_loss_stops_the_run_at_its_step(dataset, tmp_path):
    # A learning rate so large that the loss overflows after a few steps; the expected step comes from
    # training with the same steps and batches directly.
    config = small_config(learning_rate=3.0, checkpoint_every_steps=2)
    steps = train.make_steps(config)
    init_key, data_key = train.seed_keys(config.seed)
    params = train.initial_params(init_key)
    opt_state = steps.optimizer.init(params)
    batches = input_pipeline.epoch_batches(
        dataset.train_images, dataset.train_labels, config.batch_size, seed=data_key, epoch=1
    )
    for step, batch in enumerate(batches, start=1):
        params, opt_state, metrics = steps.train_step(params, opt_state, batch)
        if not np.isfinite(metrics["loss"]):
            nan_step = step
            break
    assert 2 < nan_step <= 6, "the learning rate should make a loss of epoch 1 non-finite, after a checkpoint"

    workdir = tmp_path / "run"
    message = f"the training loss is {float(metrics['loss'])} at step {nan_step} (epoch 1, batch {nan_step} of 6)"
    with pytest.raises(FloatingPointError, match=re.escape(message)) as stopped:
        train.train_and_evaluate(config, workdir, dataset=dataset)
    # Checkpoints every 2 steps: the last one before the non-finite loss was kept, none after it was written.
    last_good = (nan_step - 1) // 2 * 2
    assert f"the newest checkpoint is step {last_good}'s" in str(stopped.value)
    assert checkpointing.checkpoint_steps(workdir)[-1] == last_good
    checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=3)
    state, progress = checkpointer.restore(last_good, like={"params": params, "opt_state": opt_state})
    checkpointer.close()
    assert progress["step"] == last_good
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state))


def test_the_torch_reference_trains_in_step_with_the_jax_run(uninterrupted, dataset, tmp_path, capsys):
    from experiments import torch_reference

    _, expected = uninterrupted
    torch_reference.train_and_evaluate(small_config(), tmp_path, dataset=dataset)
    records = reporting.read_metrics(tmp_path)
    assert [record["step"] for record in records] == [6, 12, 18]
    for jax_record, torch_record in zip(expected.records, records, strict=True):
        # Same initial weights, batches and SGD: 18 float32 steps apart only by rounding.
        for key in ("summed_loss", "mean_loss", "test_loss"):
            assert torch_record[key] == pytest.approx(jax_record[key], rel=1e-5), key
        assert torch_record["test_accuracy"] == jax_record["test_accuracy"]
    assert reporting.format_epoch(records[-1], 3) in capsys.readouterr().out
    assert_reported_to_tensorboard(tmp_path, small_config(), records)
    assert (tmp_path / train.PLOT_FILE).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.fixture
def no_plot():
    """No plot at the end of a run: it takes most of a short run's time (checked once, above)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plotting, "plot_curves", lambda *args, **kwargs: None)
        yield


def steps_calling(callback, at_call: int):
    """A `train.make_steps` whose training step calls `callback()` once, before its `at_call`-th step."""
    make_steps, called = train.make_steps, False

    def make_steps_calling(config):
        steps, calls = make_steps(config), 0

        def train_step(*args):
            nonlocal calls, called
            calls += 1
            if calls == at_call and not called:
                called = True
                callback()
            return steps.train_step(*args)

        return dataclasses.replace(steps, train_step=train_step)

    return make_steps_calling


@pytest.mark.usefixtures("no_plot")
def test_two_runs_in_one_workdir_at_once_the_second_is_refused(dataset, tmp_path, monkeypatch):
    # While the first run trains, a second one is started in its workdir, to resume it (which, without a
    # checkpoint yet, would start afresh over the first one's files).
    workdir = tmp_path / "run"
    refusals = []

    def start_a_second_run():
        with pytest.raises(RunError) as refused:
            train.train_and_evaluate(small_config(num_epochs=1), workdir, resume=True, dataset=dataset)
        refusals.append(refused.value)

    monkeypatch.setattr(train, "make_steps", steps_calling(start_a_second_run, at_call=2))
    first = train.train_and_evaluate(small_config(num_epochs=1), workdir, dataset=dataset)

    assert len(refusals) == 1 and isinstance(refusals[0], train.WorkdirInUseError)
    assert str(refusals[0]).startswith(f"{workdir} is in use by pid {os.getpid()}")
    assert [record["step"] for record in reporting.read_metrics(workdir)] == [6] == [first.step]
    # The lock goes with the run: a run resumed after it takes the workdir.
    monkeypatch.undo()
    train.train_and_evaluate(small_config(num_epochs=2), workdir, resume=True, dataset=dataset)
    assert len(reporting.read_metrics(workdir)) == 2


def test_resume_without_a_checkpoint_keeps_the_epoch_records(uninterrupted, dataset, tmp_path):
    # A run whose checkpoints are gone (deleted by hand, or never written), and its metrics.
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(uninterrupted[0] / reporting.METRICS_FILE, workdir)
    before = (workdir / reporting.METRICS_FILE).read_text()
    message = (
        f"cannot resume the run in {workdir}: it has no checkpoint left, and {workdir / reporting.METRICS_FILE} "
        "holds 3 epoch record(s) that starting from the beginning would drop. Move that file away"
    )
    with pytest.raises(train.RunExistsError, match=re.escape(message)):
        train.train_and_evaluate(small_config(), workdir, resume=True, dataset=dataset)
    assert (workdir / reporting.METRICS_FILE).read_text() == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 64}, "batch_size"),  # more than the 44 training images
        ({"num_epochs": 0}, "num_epochs"),
        ({"checkpoint_every_steps": 0}, "checkpoint_every_steps"),
        ({"log_every_steps": 0}, "log_every_steps"),
        ({"max_checkpoints_to_keep": 0}, "max_checkpoints_to_keep"),  # kept none
        ({"max_checkpoints_to_keep": -1}, "max_checkpoints_to_keep"),  # an orbax traceback
        ({"seed": -1}, "seed"),  # the key of seed 2**32 - 1
        ({"seed": 2**32}, "seed"),  # the key of seed 0
        ({"seed": 2**40}, "seed"),  # the key of seed 0
        ({"momentum": -0.5}, "momentum"),
        ({"num_devices": 0}, "num_devices"),
    ],
    ids=lambda value: "-".join(f"{key}={value}" for key, value in value.items()) if isinstance(value, dict) else None,
)
def test_a_config_that_cannot_work_is_refused_before_anything_is_written(dataset, tmp_path, overrides, field):
    workdir = tmp_path / "run"
    with pytest.raises(train.ConfigError, match=rf"^config\.{field} "):
        train.train_and_evaluate(small_config(**overrides), workdir, dataset=dataset)
    assert not workdir.exists()  # so the fixed command starts afresh


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_seeds_jax_takes_exactly_are_accepted(tmp_path, seed):
    train.validate_config(small_config(seed=seed), tmp_path, train_size=44)
    assert not (tmp_path / reporting.METRICS_FILE).exists()


def test_a_workdir_that_is_empty_or_a_file_is_refused(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where pathlib.Path("") would put the run
    with pytest.raises(train.ConfigError, match="the workdir is an empty string"):
        train.train_and_evaluate(small_config(), "", dataset=dataset)
    file = tmp_path / "notes.txt"
    file.write_text("not a directory")
    for workdir in (file, file / "run"):
        with pytest.raises(train.ConfigError, match=f"the workdir {re.escape(str(workdir))} cannot be a directory"):
            train.train_and_evaluate(small_config(), workdir, dataset=dataset)
    assert file.read_text() == "not a directory"
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


class SignalReachedTheTest(Exception):
    pass


@pytest.mark.parametrize(
    ("signal_number", "at_call", "stopped_at", "where"),
    [
        # Sent during step 9 (epoch 2, batch 3): the run saves step 9's checkpoint (not a checkpoint step) and stops.
        (signal.SIGTERM, 9, 9, "epoch 2, batch 3 of 6"),
        # Sent during the last step of epoch 1: the run ends the epoch (evaluation, record, checkpoint) and stops.
        (signal.SIGINT, 6, 6, "the end of epoch 1"),
    ],
    ids=["SIGTERM", "SIGINT"],
)
@pytest.mark.usefixtures("no_plot")
def test_a_signal_stops_the_run_with_a_checkpoint_and_it_resumes(
    uninterrupted, dataset, tmp_path, monkeypatch, signal_number, at_call, stopped_at, where
):
    _, expected = uninterrupted
    workdir = tmp_path / "run"

    def the_tests_handler(number, frame):  # what the signal would reach without the run's handler
        raise SignalReachedTheTest(signal.Signals(number).name)

    monkeypatch.setattr(train, "make_steps", steps_calling(lambda: signal.raise_signal(signal_number), at_call))
    previous = signal.signal(signal_number, the_tests_handler)
    try:
        with pytest.raises(train.Interrupted) as stopped:
            train.train_and_evaluate(small_config(), workdir, dataset=dataset)
        assert signal.getsignal(signal_number) is the_tests_handler  # the run's handler is gone with it
    finally:
        signal.signal(signal_number, previous)
    monkeypatch.undo()

    name = signal.Signals(signal_number).name
    assert str(stopped.value) == (
        f"stopped by {name} after step {stopped_at} ({where}), whose checkpoint is saved. "
        f"Continue the run with: python experiments/main.py --workdir {workdir} --resume"
    )
    assert stopped.value.exit_code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signal_number]
    assert checkpointing.checkpoint_steps(workdir)[-1] == stopped_at
    assert [record["step"] for record in reporting.read_metrics(workdir)] == [6]

    resumed = train.train_and_evaluate(small_config(), workdir, resume=True, dataset=dataset)
    assert resumed.step == expected.step
    assert_trees_equal(resumed.params, expected.params)
    assert_trees_equal(resumed.opt_state, expected.opt_state)
    assert without_timing(reporting.read_metrics(workdir)) == without_timing(expected.records)
