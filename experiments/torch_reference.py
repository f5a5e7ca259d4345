"""Trains the lessons' torch Tudui the way `experiments/main.py` trains the JAX one, for side-by-side comparison.

Same data, same batches in the same order (`experiments.input_pipeline` with the same seed), the same initial weights
(the JAX run's, exported with `experiments.torch_interop`), `torch.optim.SGD` with the same settings and
`nn.CrossEntropyLoss()`; images go in as float32 NCHW scaled by 1/255 (torchvision's ToTensor). It prints the
same per-epoch lines and writes the same `metrics.jsonl`, TensorBoard files (scalars and the config as
hyperparameters) and plot to its own workdir. Like the JAX run, it stops at the first NaN or infinite training
loss, with a `FloatingPointError` that names the step.

Run from the repository root::

    JAXLOSS_CIFAR10_DIR=path/to/cifar-10-batches-py python experiments/torch_reference.py --workdir runs/torch
"""

import math
import os
import pathlib
import sys
import time

import ml_collections
import numpy as np
import torch
import tqdm
from absl import app
from torch import nn

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import datasets, errors, input_pipeline, metric_writers, plotting, reporting, train
from experiments.torch_interop import tudui_params_to_torch
from experiments.torch_tudui import TorchTudui

with errors.exit_on_config_flag_errors():
    # Defining --config reads the default config file and applies the --config.<field> overrides of sys.argv.
    from experiments import cli


def _torch_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's real rows as torch's DataLoader + ToTensor give them: float32 NCHW in [0, 1], int64 labels.

    The padding rows of a short last batch (label IGNORE_INDEX) are dropped: torch's last batch is short.
    """
    images, labels = np.asarray(batch["image"]), np.asarray(batch["label"])
    real = labels != input_pipeline.IGNORE_INDEX
    images = torch.from_numpy(images[real]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return images.float().div(255), torch.from_numpy(labels[real]).long()


class ConfigError(errors.RunError, ValueError):
    """A setting the torch reference does not support."""


def initial_model(init_key) -> TorchTudui:
    """torch's Tudui holding the initial weights of the JAX run (`experiments.train.initial_params`)."""
    model = TorchTudui()
    state = tudui_params_to_torch(train.initial_params(init_key))
    model.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    return model


@torch.no_grad()
def evaluate(model: nn.Module, dataset: datasets.ImageDataset, batch_size: int) -> dict:
    """The test set's summed loss, correct predictions and size: `{'loss_sum', 'correct', 'count'}`."""
    loss_sum, correct, count = 0.0, 0, 0
    summed_loss_fn = nn.CrossEntropyLoss(reduction="sum")
    for batch in input_pipeline.epoch_batches(dataset.test_images, dataset.test_labels, batch_size):
        images, labels = _torch_batch(batch)
        logits = model(images)
        loss_sum += summed_loss_fn(logits, labels).item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return {"loss_sum": loss_sum, "correct": correct, "count": count}


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, dataset: datasets.ImageDataset | None = None
) -> nn.Module:
    """Trains torch's Tudui as `config` says (no checkpoints), writing metrics and a plot to `workdir`.

    Args:
        config: the settings of `experiments/configs/default.py`; `num_devices` is not used (torch trains on
            its default device).
        workdir: the run's directory; it must not hold a run already.
        dataset: the data; None loads the one `config` names (`experiments.train.load_data`).

    Returns:
        The trained torch model.

    Raises:
        FileExistsError: if `workdir` holds a run.
        WorkdirInUseError: if another run holds `workdir`.
        ConfigError: (a ValueError) for a setting `experiments.train.validate_config` refuses, a `compute_dtype`
            other than float32, or a multi-process (`distributed`) config.
        FloatingPointError: if the training loss becomes NaN or infinite; the message names the step.
    """
    workdir = pathlib.Path(workdir)
    train.validate_config(config, workdir)
    if config.compute_dtype != "float32" or config.distributed.enabled:
        raise ConfigError(
            "the torch reference trains in float32 in one process: set --config.compute_dtype=float32 and "
            "--config.distributed.enabled=False"
        )
    with train.lock_workdir(workdir):
        train.check_no_run(workdir)
        return _train(config, workdir, dataset)


def _train(
    config: ml_collections.ConfigDict, workdir: pathlib.Path, dataset: datasets.ImageDataset | None
) -> nn.Module:
    """`train_and_evaluate` in its workdir, once the config is checked and the workdir is held."""
    if dataset is None:
        dataset = train.load_data(config)
    train.validate_config(config, workdir, train_size=len(dataset.train_labels))
    print(f"Data: {dataset.description}")

    init_key, data_key = train.seed_keys(config.seed)
    model = initial_model(init_key)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.learning_rate,
        momentum=config.momentum,
        dampening=config.dampening,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = input_pipeline.num_batches(len(dataset.train_labels), config.batch_size)
    writer = metric_writers.create_default_writer(workdir / reporting.TENSORBOARD_DIR, just_logging=False)
    writer.write_hparams(reporting.config_hparams(config))
    metrics_file = reporting.MetricsFile(workdir)
    step, clock_start = 0, time.perf_counter()
    try:
        for epoch in range(1, config.num_epochs + 1):
            summed_loss, epoch_start = 0.0, time.perf_counter()
            batches = input_pipeline.epoch_batches(
                dataset.train_images, dataset.train_labels, config.batch_size, seed=data_key, epoch=epoch
            )
            for batch_index, batch in enumerate(
                tqdm.tqdm(
                    batches,
                    total=steps_per_epoch,
                    disable=None,
                    leave=False,
                    desc=f"epoch {epoch}/{config.num_epochs}",
                    unit="batch",
                )
            ):
                images, labels = _torch_batch(batch)
                loss = loss_fn(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                value = loss.item()
                if not math.isfinite(value):  # the JAX run's message (experiments.train), less its checkpoint
                    raise FloatingPointError(
                        f"the training loss is {value} at step {step} (epoch {epoch}, batch {batch_index + 1} of "
                        f"{steps_per_epoch}): stopping; the torch reference saves no checkpoints. A new run with "
                        "a smaller learning rate may help."
                    )
                summed_loss += value  # the lessons' running_loss, summed in float64 as the JAX run does
                if step % config.log_every_steps == 0:
                    writer.write_scalars(step, {"train/loss": value})
            train_seconds = time.perf_counter() - epoch_start
            test = evaluate(model, dataset, config.batch_size)
            record = reporting.epoch_record(
                epoch=epoch,
                step=step,
                summed_loss=summed_loss,
                num_batches=steps_per_epoch,
                test=test,
                train_images=len(dataset.train_labels),
                train_seconds=train_seconds,
                elapsed_seconds=time.perf_counter() - clock_start,
            )
            writer.write_scalars(step, reporting.epoch_scalars(record))
            writer.flush()
            metrics_file.append(record)
            tqdm.tqdm.write(reporting.format_epoch(record, config.num_epochs))
    finally:
        writer.close()
        metrics_file.close()
    plotting.plot_curves(
        reporting.read_metrics(workdir), workdir / train.PLOT_FILE, title=f"torch Tudui on {dataset.name}"
    )
    return model


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    with errors.exit_on_user_errors(cli.WORKDIR.value, resumable=False):
        train_and_evaluate(cli.config_from_flags(), cli.WORKDIR.value)


if __name__ == "__main__":
    with errors.exit_on_config_flag_errors():  # with --config=file, ml_collections reads it while absl parses the flags
        cli.run(main, default_workdir="runs/tudui_torch")
