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
"""

import collections
import dataclasses
import functools
import math
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
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
from experiments.models import IMAGE_SHAPE, Tudui

PLOT_FILE = "curves.png"
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
# How many evaluation steps may be queued on the devices before the host waits for the oldest. Enough to keep
# them busy; and XLA:CPU (jaxlib 0.10.2) deadlocks in its in-process all-reduce once about 64 steps of a
# multi-device mesh are queued (seen on 2 and 4 CPU devices with 2 cores; 32 ran). Training has ~2 in flight.
EVAL_STEPS_IN_FLIGHT = 8


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
        ValueError: for a `compute_dtype` other than 'float32' and 'bfloat16'.
    """
    if config.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.compute_dtype must be one of {COMPUTE_DTYPES}; got {config.compute_dtype!r}")
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
    """Raises FileExistsError if `workdir` holds a run's metrics or checkpoints (a run is never overwritten)."""
    if (workdir / reporting.METRICS_FILE).exists() or any((workdir / checkpointing.CHECKPOINT_DIR).glob("*")):
        raise FileExistsError(f"{workdir} already holds a run: continue it with --resume, or choose another workdir")


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
        raise ValueError(
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


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    resume: bool = False,
    dataset: datasets.ImageDataset | None = None,
) -> TrainResult:
    """Trains Tudui as `config` says, writing metrics, TensorBoard events, checkpoints and a plot to `workdir`.

    Trains on a mesh of `config.num_devices` devices (all, by default), `config.batch_size` being the global batch.
    In a multi-process run every process calls it alike (after `jax.distributed.initialize`) with the same
    `workdir`, on a filesystem they share.

    Args:
        config: the settings of `experiments/configs/default.py`.
        workdir: the run's directory. It must not hold a run already unless `resume` is true.
        resume: continue the run in `workdir` from its newest checkpoint (from the start if it has none).
        dataset: the data; None loads the one `config` names (`load_data`).

    Returns:
        The final parameters and optimizer state, the number of steps, and every epoch's record.

    Raises:
        FileExistsError: if `workdir` holds a run and `resume` is false.
        ValueError: if the run to resume used other settings or data, or the batch does not divide by the devices.
        FloatingPointError: if the training loss or the parameters become NaN or infinite; the message names
            the step. Checkpoints are only written of finite parameters, so the newest one is good.
    """
    workdir = pathlib.Path(workdir)
    mesh = distributed.data_mesh(config.num_devices)
    distributed.check_batch_size(config.batch_size, mesh)
    primary = jax.process_index() == 0
    say = print if primary else lambda *args: None
    if not resume:
        check_no_run(workdir)
    if dataset is None:
        dataset = load_data(config)
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

    checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints_to_keep)
    latest = checkpointer.latest_step() if resume else None
    if latest is not None:
        # Restored straight onto this run's mesh (the arrays' shardings), whatever mesh saved them.
        state, saved = checkpointer.restore(latest, like={"params": params, "opt_state": opt_state})
        _check_same_run(saved.pop("run"), identity, latest)
        params, opt_state, progress = state["params"], state["opt_state"], saved
        say(f"Resuming from the checkpoint of step {latest} (epoch {progress['epoch']}, batch {progress['batch']})")
    elif resume:
        say(f"No checkpoint in {workdir}: starting from the beginning")

    # Both start after the checkpoint's step: what an interrupted run reported after it is dropped, then redone.
    writer = metric_writers.create_default_writer(
        workdir / reporting.TENSORBOARD_DIR, just_logging=not primary, purge_step=progress["step"] + 1
    )
    writer.write_hparams(reporting.config_hparams(config))
    metrics_file = reporting.MetricsFile(workdir, start_step=progress["step"]) if primary else None
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

    try:
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
                    if step % config.checkpoint_every_steps == 0 and batch_index + 1 < steps_per_epoch:
                        losses.flush()  # the checkpoint's partial sum includes this step
                        save(
                            finite_state(epoch, batch_index),
                            epoch,
                            batch_index + 1,
                            losses.total,
                            train_seconds + time.perf_counter() - epoch_start,
                        )
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
    finally:
        checkpointer.close()  # waits for the saves in flight
        writer.close()
        if metrics_file is not None:
            metrics_file.close()

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
