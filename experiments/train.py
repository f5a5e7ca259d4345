"""Trains the lessons' Tudui with jit-compiled torch-SGD steps, reporting, checkpointing and resuming.

`train_and_evaluate(config, workdir)` is the whole experiment; `experiments/main.py` is its command line. It
trains data-parallel over all the devices JAX sees (`experiments.distributed`: the batch split over a mesh,
parameters replicated), on one host or, after `jax.distributed.initialize`, on many. Every epoch prints the
lessons' summed loss with the mean loss, test loss and accuracy, speed and elapsed time, and appends the same
record to `workdir/metrics.jsonl` and to TensorBoard (`workdir/tensorboard`, with the config as hyperparameters,
through `experiments.metric_writers`). Checkpoints (`workdir/checkpoints`)
are written at the end of each epoch and every `config.checkpoint_every_steps` steps;
resuming from one gives bitwise the result of an uninterrupted run, because the batch order is a pure function
of (seed, epoch) and the checkpoint holds everything else the remaining steps depend on. Checkpoints hold the
sharded arrays (orbax) and restore onto the mesh of the resumed run, whatever its number of devices.
In a multi-process run, process 0 alone prints and writes metrics, TensorBoard events and the plot (the others
log their metrics, as clu's default writer does); all processes take part in every checkpoint.

A run never loses another's work, nor its own:

* the config is checked whole (`validate_config`) before anything is written, so a fixed rerun starts afresh;
* the workdir is locked for the run (`lock_workdir`): a second run started in it at the same time is refused;
* a resumed run falls back past damaged checkpoints to the newest intact one (or `resume_step`'s), naming them,
  and never starts over on top of a run's metrics;
* Ctrl-C (SIGINT) or SIGTERM stops it at the next step boundary with a checkpoint, raising `Interrupted`.
"""

import collections
import contextlib
import dataclasses
import fcntl
import functools
import math
import os
import pathlib
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from jax.experimental import multihost_utils

from experiments import (
    checkpointing,
    datasets,
    distributed,
    input_pipeline,
    metric_writers,
    plotting,
    reporting,
    train_steps,
)
from experiments.errors import RunError
from experiments.models import IMAGE_SHAPE, Tudui

PLOT_FILE = "curves.png"
LOCK_FILE = ".lock"
# Settings that may change when a run is resumed: they do not change the numbers it computes.
# (The number of devices changes only the order of float sums.)
RESUMABLE_SETTINGS = (
    "num_epochs",
    "cifar10_dir",
    "tfds_data_dir",
    "checkpoint_every_steps",
    "max_checkpoints_to_keep",
    "log_every_steps",
    "num_devices",
    "distributed",
)
COMPUTE_DTYPES = ("float32", "bfloat16")
# The seeds `jax.random.key` takes exactly, with and without `jax_enable_x64`: without it a seed keeps only its
# low 32 bits (2**32 and 2**40 give seed 0's key, -1 that of 2**32 - 1), with it negative seeds and seeds from
# 2**32 give keys no 32-bit run can make.
MAX_SEED = 2**32 - 1
# Fields of the config that count things (images, epochs, steps, checkpoints): integers >= 1.
POSITIVE_SETTINGS = ("batch_size", "num_epochs", "checkpoint_every_steps", "log_every_steps", "max_checkpoints_to_keep")
# What a checkpoint's progress holds besides its arrays.
PROGRESS_KEYS = ("run", "step", "epoch", "batch", "summed_loss", "train_seconds", "elapsed_seconds")
# The signals that stop a run at the next step boundary, with a checkpoint (`Interrupted`).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How many evaluation steps may be queued on the devices before the host waits for the oldest. Enough to keep
# them busy; and XLA:CPU (jaxlib 0.10.2) deadlocks in its in-process all-reduce once about 64 steps of a
# multi-device mesh are queued (seen on 2 and 4 CPU devices with 2 cores; 32 ran). Training has ~2 in flight.
EVAL_STEPS_IN_FLIGHT = 8


class ConfigError(RunError, ValueError):
    """A setting that cannot work (a field of the config, the workdir); the message names it (`config.<field>`)."""


class RunExistsError(RunError, FileExistsError):
    """The workdir holds a run that starting afresh would overwrite."""


class WorkdirInUseError(RunError, BlockingIOError):
    """Another run holds the workdir's lock."""


class Interrupted(RunError):
    """The run stopped at a step boundary on SIGINT (Ctrl-C) or SIGTERM, after checkpointing that step.

    The message says how to resume. Attributes: `signal` (the `signal.Signals`), `step` (the checkpoint's step)
    and `exit_code`, the shells' convention for a process a signal stopped (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, message: str, *, signal_number: int, step: int):
        super().__init__(message)
        self.signal = signal.Signals(signal_number)
        self.step = step
        self.exit_code = 128 + self.signal.value


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished run leaves: its final parameters and optimizer state, step count and epoch records."""

    params: Any
    opt_state: Any
    step: int
    records: list[dict]


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """The keys of a run's initial parameters and of its data order: two independent streams from one seed."""
    init_key, data_key = jax.random.split(jax.random.key(seed))
    return init_key, data_key


def validate_config(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, train_size: int | None = None
) -> None:
    """Checks every setting of a run before it writes anything, so that a run refused here can be rerun as is.

    Args:
        config: the settings of `experiments/configs/default.py`.
        workdir: the run's directory: a non-empty path that is, or can become, a directory.
        train_size: the training set's size, which a batch may not exceed; None leaves that check for later.

    Raises:
        ConfigError: naming the field (`config.<field>`, or the workdir) and what it takes.
    """
    for field in POSITIVE_SETTINGS:
        value = config[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{field} must be an integer >= 1; got {value!r}")
    seed = config.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"config.seed must be an integer in [0, 2**32 - 1], the seeds jax.random.key takes exactly (it keeps "
            f"only the low 32 bits of others, so 2**32 would repeat seed 0 and -1 seed 2**32 - 1); got {seed!r}"
        )
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"config.compute_dtype must be one of {COMPUTE_DTYPES}; got {config.compute_dtype!r}")
    try:
        train_steps.torch_sgd(
            config.learning_rate, config.momentum, config.dampening, config.weight_decay, config.nesterov
        )
    except ValueError as error:  # "torch_sgd: momentum must be >= 0, got -1.0" -> "config.momentum must ..."
        raise ConfigError(str(error).replace("torch_sgd: ", "config.", 1)) from None
    device_count = jax.device_count()
    num_devices = device_count if config.num_devices is None else config.num_devices
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or not 1 <= num_devices <= device_count:
        raise ConfigError(
            f"config.num_devices must be in [1, {device_count}] (the devices JAX sees), or None for all of them; "
            f"got {config.num_devices!r}"
        )
    try:
        distributed.check_batch_size(config.batch_size, num_devices)
    except ValueError as error:  # named as the config fields: config.batch_size, config.num_devices
        raise ConfigError(f"config.{error}".replace("(num_devices)", "(config.num_devices)")) from None
    if train_size is not None and config.batch_size > train_size:
        raise ConfigError(
            f"config.batch_size {config.batch_size} is larger than the training set ({train_size} images): "
            f"every batch but the first would be empty padding. Use a batch of at most {train_size}."
        )
    if not os.fspath(workdir):
        raise ConfigError("the workdir is an empty string: give the run a directory (--workdir DIR)")
    path = pathlib.Path(workdir)
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(
            f"the workdir {path} cannot be a directory: {existing} is a file. Choose another workdir (--workdir)."
        )


@contextlib.contextmanager
def lock_workdir(workdir: str | os.PathLike) -> Iterator[None]:
    """Holds `workdir` for one run: an exclusive `fcntl.flock` on `workdir/.lock`, which records the holder's pid.

    The lock goes with its holder: released on leaving the block, or by the kernel when the process dies (the
    file stays, with the last holder's pid). Creates `workdir` if missing.

    Raises:
        WorkdirInUseError: if another run (another process, or another call in this one) holds the lock.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise WorkdirInUseError(
                f"{workdir} is in use by {who}: another run holds {path}. Wait for it to end, or choose another "
                "workdir."
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


# Module-level, so that it is compiled once per process (ten threefry draws take seconds to compile on a CPU).
_init_tudui = jax.jit(Tudui().init)


def initial_params(init_key: jax.Array) -> dict:
    """Tudui's initial parameters (torch's default distributions, drawn from JAX's random stream)."""
    return _init_tudui(init_key, jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))


@dataclasses.dataclass(frozen=True)
class Steps:
    """The optimizer and the jit-compiled steps that train and evaluate Tudui with it."""

    optimizer: optax.GradientTransformation
    train_step: Callable
    eval_step: Callable


def make_steps(config: ml_collections.ConfigDict) -> Steps:
    """`torch.optim.SGD` with the config's hyperparameters, and Tudui's training and evaluation steps.

    Built once per process for given hyperparameters, so that later runs (in a notebook, or a test) reuse the
    compiled steps. `config.compute_dtype` is Tudui's computation dtype (parameters stay float32).

    Raises:
        ConfigError: for a `compute_dtype` other than 'float32' and 'bfloat16'.
    """
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise ConfigError(f"config.compute_dtype must be one of {COMPUTE_DTYPES}; got {config.compute_dtype!r}")
    return _steps(
        config.learning_rate,
        config.momentum,
        config.dampening,
        config.weight_decay,
        config.nesterov,
        config.compute_dtype,
    )


@functools.cache
def _steps(
    learning_rate: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool, compute_dtype: str
) -> Steps:
    optimizer = train_steps.torch_sgd(learning_rate, momentum, dampening, weight_decay, nesterov)
    model = Tudui(dtype=jnp.dtype(compute_dtype))
    return Steps(optimizer, train_steps.make_train_step(model, optimizer), _eval_step(compute_dtype))


@functools.cache
def _eval_step(compute_dtype: str) -> Callable:
    return train_steps.make_eval_step(Tudui(dtype=jnp.dtype(compute_dtype)))


@jax.jit
def _all_finite(tree) -> jax.Array:
    """Whether every element of every array in `tree` is finite (one boolean, computed where the arrays are)."""
    return jnp.all(jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)]))


def load_data(config: ml_collections.ConfigDict) -> datasets.ImageDataset:
    """The dataset `config` names (`config.dataset`, `config.cifar10_dir`, `config.tfds_data_dir`)."""
    return datasets.load_dataset(config.dataset, cifar10_dir=config.cifar10_dir, tfds_data_dir=config.tfds_data_dir)


def check_no_run(workdir: pathlib.Path) -> None:
    """Raises RunExistsError if `workdir` holds a run's metrics or checkpoints (a run is never overwritten)."""
    if (workdir / reporting.METRICS_FILE).exists() or any((workdir / checkpointing.CHECKPOINT_DIR).glob("*")):
        raise RunExistsError(f"{workdir} already holds a run: continue it with --resume, or choose another workdir")


def _identity(config: ml_collections.ConfigDict, dataset: datasets.ImageDataset) -> dict:
    """What a resumed run must share with the run it continues: the settings that shape its numbers, its data."""
    identity = {key: value for key, value in config.to_dict().items() if key not in RESUMABLE_SETTINGS}
    identity.update(data=dataset.name, train_size=len(dataset.train_labels), test_size=len(dataset.test_labels))
    return identity


def _check_same_run(saved: dict, current: dict, step: int) -> None:
    differences = [
        f"{key}: {saved.get(key)!r} then, {value!r} now" for key, value in current.items() if saved.get(key) != value
    ]
    if differences:
        raise ConfigError(
            f"cannot resume the run checkpointed at step {step}: it was made with other settings or "
            f"data ({'; '.join(differences)}). Resume with the original ones, or use a new workdir."
        )


class _Position:
    """Where the run is, for messages: global step, epoch and batch within it."""

    def __init__(self, steps_per_epoch: int):
        self.steps_per_epoch = steps_per_epoch
        self.last_checkpoint = None

    def stop(self, what: str, step: int, epoch: int, batch_index: int) -> FloatingPointError:
        """The error that stops the run at `step` because `what` (e.g. "the training loss is nan")."""
        saved = (
            f"the newest checkpoint is step {self.last_checkpoint}'s"
            if self.last_checkpoint is not None
            else "no checkpoint was saved"
        )
        return FloatingPointError(
            f"{what} at step {step} (epoch {epoch}, batch {batch_index + 1} of "
            f"{self.steps_per_epoch}): stopping; {saved}. A new run with a smaller learning "
            "rate may help."
        )


class _LossSum:
    """The epoch's summed loss, taking each step's loss one step late and stopping at a NaN or infinity.

    Reading a loss makes the host wait for its step; reading step k's loss after step k+1 has been dispatched
    keeps the device busy meanwhile.
    """

    def __init__(self, position: _Position, writer: metric_writers.MetricWriter, log_every_steps: int):
        self._position, self._writer, self._log_every_steps = position, writer, log_every_steps
        self._pending = None
        self.total = 0.0
        self.last = math.nan  # the newest loss checked

    def add(self, step: int, epoch: int, batch_index: int, loss: jax.Array) -> None:
        """Takes the loss of `step` (a device scalar) and checks the one taken before."""
        self.flush()
        self._pending = (step, epoch, batch_index, loss)

    def flush(self) -> None:
        """Checks and sums the loss taken last (if any), now."""
        if self._pending is None:
            return
        step, epoch, batch_index, loss = self._pending
        self._pending = None
        value = float(loss)
        if not math.isfinite(value):
            raise self._position.stop(f"the training loss is {value}", step, epoch, batch_index)
        self.total += value  # in float64 on the host, in batch order: the same sum after a resume
        self.last = value
        if step % self._log_every_steps == 0:
            self._writer.write_scalars(step, {"train/loss": value})


class _StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM while training: noted by a handler, acted on by the loop at a step boundary.

    Installed for the training loop alone, in the main thread (elsewhere Python allows no handlers, and signals
    keep theirs); the previous handlers are back on leaving. A second Ctrl-C stops at once, without a checkpoint.
    In a multi-process run the processes stop together: they compare notes (an all-gather) at checkpoint steps
    and epoch ends, and stop at the first such step after the signal.
    """

    def __init__(self, *, announce: bool):
        self.signal_number: int | None = None
        self._announce = announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            # None: a handler that was not installed from Python, which cannot be put back; the default instead.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, number: int, frame: Any) -> None:
        if number == signal.SIGINT and self.signal_number == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal_number is None:
            self.signal_number = number
            if self._announce:  # os.write: print may not be re-entered from a handler
                with contextlib.suppress(OSError):
                    os.write(
                        2,
                        f"\n{signal.Signals(number).name}: stopping after this step, with a checkpoint "
                        "(Ctrl-C again stops at once, without one)\n".encode(),
                    )

    def requested(self, *, agreed: bool) -> int | None:
        """The signal to stop for, if any; in a multi-process run only at a step every process polls with `agreed`."""
        if jax.process_count() == 1:
            return self.signal_number
        if not agreed:
            return None
        numbers = multihost_utils.process_allgather(np.int32(self.signal_number or 0))
        return int(np.max(numbers)) or None


def _interrupted(signal_number: int, step: int, where: str, workdir: pathlib.Path) -> Interrupted:
    command = f"python experiments/main.py --workdir {shlex.quote(str(workdir))} --resume"
    return Interrupted(
        f"stopped by {signal.Signals(signal_number).name} after step {step} ({where}), whose checkpoint is saved. "
        f"Continue the run with: {command}",
        signal_number=signal_number,
        step=step,
    )


def _resume_point(
    checkpointer: checkpointing.Checkpointer,
    workdir: pathlib.Path,
    like: dict,
    identity: dict,
    resume_step: int | None,
    say: Callable[[str], None],
) -> tuple[int, dict, dict] | None:
    """The `(step, state, progress)` a resumed run starts from, or None to start from the beginning.

    The checkpoint is `resume_step`'s, or else the newest one that can be read: damaged ones are named and passed
    over. The ones after it, which the run will write again, are set aside (`Checkpointer.set_aside`).
    """
    available = checkpointer.all_steps()
    if resume_step is not None and resume_step not in available:
        raise checkpointing.CheckpointError(
            f"cannot resume from step {resume_step}: {checkpointer.directory} holds no checkpoint of that step "
            f"(it holds steps {available or 'none'})"
        )
    if not available:
        records = reporting.read_metrics(workdir)
        if records:
            metrics = workdir / reporting.METRICS_FILE
            raise RunExistsError(
                f"cannot resume the run in {workdir}: it has no checkpoint left, and {metrics} holds "
                f"{len(records)} epoch record(s) that starting from the beginning would drop. Move that file away "
                "to train again from the start, or choose another workdir."
            )
        say(f"No checkpoint in {workdir}: starting from the beginning")
        return None

    damaged = []
    for step in [resume_step] if resume_step is not None else reversed(available):
        try:
            state, progress = checkpointer.restore(step, like)
            missing = [key for key in PROGRESS_KEYS if key not in progress]
            if missing:
                raise checkpointing.CheckpointError(
                    f"the checkpoint of step {step} ({checkpointer.directory / str(step)}) is damaged: its progress "
                    f"lacks {', '.join(missing)}"
                )
        except checkpointing.CheckpointError as error:
            if resume_step is not None:
                raise
            say(f"Passing over a damaged checkpoint: {error}")
            damaged.append(step)
            continue
        break
    else:
        raise checkpointing.CheckpointError(
            f"cannot resume the run in {workdir}: none of its checkpoints can be read (steps {damaged}, all "
            f"damaged). Move {checkpointer.directory} away to train again from the start, or choose another workdir."
        )

    if not _all_finite(state):
        earlier = [earlier_step for earlier_step in available if earlier_step < step]
        raise checkpointing.CheckpointError(
            f"the checkpoint of step {step} ({checkpointer.directory / str(step)}) holds parameters or optimizer state "
            f"that are not finite (NaN or infinity), so the run cannot resume from it. Resume from an earlier "
            f"checkpoint (--resume_step; this workdir holds steps {earlier or 'none'} before it), or start anew in "
            "another workdir."
        )
    _check_same_run(progress.pop("run"), identity, step)
    newer = [newer_step for newer_step in available if newer_step > step]
    if newer:
        folders = checkpointer.set_aside(newer)
        say(f"Set aside the checkpoints of steps {newer}, which this run writes again: now in {folders[0].parent}")
    return step, state, progress


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    resume: bool = False,
    resume_step: int | None = None,
    dataset: datasets.ImageDataset | None = None,
) -> TrainResult:
    """Trains Tudui as `config` says, writing metrics, TensorBoard events, checkpoints and a plot to `workdir`.

    Trains on a mesh of `config.num_devices` devices (all, by default), `config.batch_size` being the global batch.
    In a multi-process run every process calls it alike (after `jax.distributed.initialize`) with the same
    `workdir`, on a filesystem they share.

    The config is checked whole before anything is written (`validate_config`), and `workdir` is locked for the
    run (`lock_workdir`, by process 0). SIGINT (Ctrl-C) and SIGTERM stop the run at the next step boundary (in a
    multi-process run, the next checkpoint step or epoch end) with a checkpoint of that step, and raise
    `Interrupted`; the handlers are installed for the training loop alone.

    Args:
        config: the settings of `experiments/configs/default.py`.
        workdir: the run's directory. It must not hold a run already unless `resume` is true.
        resume: continue the run in `workdir` from its newest checkpoint that can be read, naming (on stdout)
            the damaged ones it passes over; from the start if it has no checkpoint and no epoch record.
        resume_step: continue from the checkpoint of this step instead (implies `resume`). Checkpoints after
            the one resumed from are moved to `workdir/checkpoints_set_aside`, since the run writes those
            steps again.
        dataset: the data; None loads the one `config` names (`load_data`).

    Returns:
        The final parameters and optimizer state, the number of steps, and every epoch's record.

    Raises:
        ConfigError: for a setting that cannot work (the message names `config.<field>`), or if the run to
            resume used other settings or data.
        RunExistsError: if `workdir` holds a run and `resume` is false, or holds epoch records but no
            checkpoint to resume them from.
        WorkdirInUseError: if another run holds `workdir`.
        experiments.checkpointing.CheckpointError: if no checkpoint can be resumed from (all damaged, or
            `resume_step`'s missing or damaged), or the one resumed from holds NaNs or infinities.
        Interrupted: after SIGINT or SIGTERM, once the step reached is checkpointed.
        FloatingPointError: if the training loss or the parameters become NaN or infinite; the message names
            the step. Checkpoints are only written of finite parameters, so the newest one is good.
    """
    validate_config(config, workdir, train_size=None if dataset is None else len(dataset.train_labels))
    workdir = pathlib.Path(workdir)
    resume = resume or resume_step is not None
    mesh = distributed.data_mesh(config.num_devices)
    primary = jax.process_index() == 0
    if primary and not resume:
        check_no_run(workdir)  # before the data loads; again once the workdir is locked
    if dataset is None:
        dataset = load_data(config)
        validate_config(config, workdir, train_size=len(dataset.train_labels))

    with contextlib.ExitStack() as stack:
        # Process 0 alone locks the workdir (the others write only their part of each checkpoint), and tells
        # the others whether it may start.
        refusal = None
        if primary:
            try:
                stack.enter_context(lock_workdir(workdir))
                if not resume:
                    check_no_run(workdir)
            except RunError as error:
                refusal = error
        if jax.process_count() > 1 and int(multihost_utils.broadcast_one_to_all(np.int32(refusal is not None))):
            refusal = refusal or RunError(f"process 0 cannot start the run in {workdir}: see its message")
        if refusal is not None:
            raise refusal
        return _train(config, workdir, resume, resume_step, dataset, mesh, primary)


def _train(
    config: ml_collections.ConfigDict,
    workdir: pathlib.Path,
    resume: bool,
    resume_step: int | None,
    dataset: datasets.ImageDataset,
    mesh: jax.sharding.Mesh,
    primary: bool,
) -> TrainResult:
    """`train_and_evaluate` once the config is checked, the data loaded and the workdir locked."""
    say = print if primary else lambda *args: None
    say(f"Data: {dataset.description}")
    if mesh.size > 1:
        say(
            f"Devices: {mesh.size} x {mesh.devices.flat[0].device_kind} in {jax.process_count()} process(es), "
            f"{config.batch_size // mesh.size} images each of every batch of {config.batch_size}"
        )

    steps = make_steps(config)
    init_key, data_key = seed_keys(config.seed)
    params = jax.device_put(initial_params(init_key), distributed.replicated(mesh))
    opt_state = jax.device_put(steps.optimizer.init(params), distributed.replicated(mesh))
    identity = _identity(config, dataset)
    progress = {"step": 0, "epoch": 1, "batch": 0, "summed_loss": 0.0, "train_seconds": 0.0, "elapsed_seconds": 0.0}

    with contextlib.ExitStack() as closing:  # on leaving: the metrics file, the writer, then the checkpoints
        checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints_to_keep)
        closing.callback(checkpointer.close)  # waits for the saves in flight
        start = None
        if resume:
            # Restored straight onto this run's mesh (the arrays' shardings), whatever mesh saved them.
            like = {"params": params, "opt_state": opt_state}
            start = _resume_point(checkpointer, workdir, like, identity, resume_step, say)
        latest = None
        if start is not None:
            latest, state, progress = start
            params, opt_state = state["params"], state["opt_state"]
            say(f"Resuming from the checkpoint of step {latest} (epoch {progress['epoch']}, batch {progress['batch']})")

        # Both start after the checkpoint's step: what an interrupted run reported after it is dropped, then redone.
        writer = metric_writers.create_default_writer(
            workdir / reporting.TENSORBOARD_DIR, just_logging=not primary, purge_step=progress["step"] + 1
        )
        closing.callback(writer.close)
        writer.write_hparams(reporting.config_hparams(config))
        metrics_file = reporting.MetricsFile(workdir, start_step=progress["step"]) if primary else None
        if metrics_file is not None:
            closing.callback(metrics_file.close)
        steps_per_epoch = input_pipeline.num_batches(len(dataset.train_labels), config.batch_size)
        position = _Position(steps_per_epoch)
        position.last_checkpoint = latest
        losses = _LossSum(position, writer, config.log_every_steps)
        step = progress["step"]
        clock_start = time.perf_counter() - progress["elapsed_seconds"]

        def finite_state(epoch: int, batch_index: int) -> dict:
            """The parameters and optimizer state after `step`; raises if they are not finite."""
            state = {"params": params, "opt_state": opt_state}
            if not _all_finite(state):
                raise position.stop("the parameters are not finite", step, epoch, batch_index)
            return state

        def save(state: dict, next_epoch: int, next_batch: int, summed_loss: float, train_seconds: float) -> None:
            """Checkpoints `state`, the state after `step`, with where to go on from and the epoch's sums so far."""
            writer.flush()  # everything reported up to `step` is on disk before its checkpoint
            checkpointer.save(
                step,
                state,
                {
                    "run": identity,
                    "step": step,
                    "epoch": next_epoch,
                    "batch": next_batch,
                    "summed_loss": summed_loss,
                    "train_seconds": train_seconds,
                    "elapsed_seconds": time.perf_counter() - clock_start,
                },
            )
            position.last_checkpoint = step

        stops = closing.enter_context(_StopRequests(announce=primary))  # the first to go, on leaving
        for epoch in range(progress["epoch"], config.num_epochs + 1):
            resuming = epoch == progress["epoch"]
            first_batch = progress["batch"] if resuming else 0
            losses.total = progress["summed_loss"] if resuming else 0.0
            train_seconds = progress["train_seconds"] if resuming else 0.0
            epoch_start = time.perf_counter()
            batches = input_pipeline.epoch_batches(
                dataset.train_images,
                dataset.train_labels,
                config.batch_size,
                seed=data_key,
                epoch=epoch,
                start_batch=first_batch,
                shard=distributed.process_rows(),
            )
            # disable=None: no progress bar when stderr is not a terminal (a log file, a test).
            with tqdm.tqdm(
                input_pipeline.prefetch_to_device(batches, sharding=distributed.batch_sharding(mesh)),
                total=steps_per_epoch,
                initial=first_batch,
                disable=None if primary else True,
                leave=False,
                desc=f"epoch {epoch}/{config.num_epochs}",
                unit="batch",
            ) as bar:
                for batch_index, batch in enumerate(bar, start=first_batch):
                    params, opt_state, metrics = steps.train_step(params, opt_state, batch)
                    step += 1
                    losses.add(step, epoch, batch_index, metrics["loss"])
                    if step % config.log_every_steps == 0:
                        bar.set_postfix(loss=f"{losses.last:.4f}", refresh=False)
                    if batch_index + 1 == steps_per_epoch:
                        continue  # the epoch's end, below, checkpoints (and may stop)
                    checkpoint_step = step % config.checkpoint_every_steps == 0
                    stop = stops.requested(agreed=checkpoint_step)
                    if checkpoint_step or stop:
                        losses.flush()  # the checkpoint's partial sum includes this step
                        save(
                            finite_state(epoch, batch_index),
                            epoch,
                            batch_index + 1,
                            losses.total,
                            train_seconds + time.perf_counter() - epoch_start,
                        )
                    if stop:
                        where = f"epoch {epoch}, batch {batch_index + 1} of {steps_per_epoch}"
                        raise _interrupted(stop, step, where, workdir)
                losses.flush()
            train_seconds += time.perf_counter() - epoch_start
            state = finite_state(epoch, steps_per_epoch - 1)

            test = evaluate(steps.eval_step, params, dataset, config.batch_size, mesh)
            record = reporting.epoch_record(
                epoch=epoch,
                step=step,
                summed_loss=losses.total,
                num_batches=steps_per_epoch,
                test=test,
                train_images=len(dataset.train_labels),
                train_seconds=train_seconds,
                elapsed_seconds=time.perf_counter() - clock_start,
            )
            writer.write_scalars(step, reporting.epoch_scalars(record))
            if metrics_file is not None:  # process 0
                metrics_file.append(record)
                tqdm.tqdm.write(reporting.format_epoch(record, config.num_epochs))
            save(state, epoch + 1, 0, 0.0, 0.0)
            if epoch < config.num_epochs and (stop := stops.requested(agreed=True)):
                raise _interrupted(stop, step, f"the end of epoch {epoch}", workdir)

    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("metrics written")  # process 0's file is complete for every reader
    records = reporting.read_metrics(workdir)
    if primary:
        plotting.plot_curves(records, workdir / PLOT_FILE, title=f"Tudui on {dataset.name}")
    return TrainResult(params=params, opt_state=opt_state, step=step, records=records)


def evaluate(eval_step, params, dataset: datasets.ImageDataset, batch_size: int, mesh: jax.sharding.Mesh) -> dict:
    """The test set's summed loss, correct predictions and size: `{'loss_sum', 'correct', 'count'}`.

    Batches of `batch_size` split over `mesh` as in training; each process loads its own rows of them. At most
    `EVAL_STEPS_IN_FLIGHT` steps are queued at a time.
    """
    batches = input_pipeline.epoch_batches(
        dataset.test_images, dataset.test_labels, batch_size, shard=distributed.process_rows()
    )
    batches = input_pipeline.prefetch_to_device(batches, sharding=distributed.batch_sharding(mesh))
    pending, sums = collections.deque(), []
    for batch in batches:
        pending.append(eval_step(params, batch))
        if len(pending) > EVAL_STEPS_IN_FLIGHT:
            sums.append(jax.device_get(pending.popleft()))
    sums += jax.device_get(list(pending))
    return {
        "loss_sum": math.fsum(float(s["loss_sum"]) for s in sums),
        "correct": sum(int(s["correct"]) for s in sums),
        "count": sum(int(s["count"]) for s in sums),
    }
