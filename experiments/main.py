"""Trains the lessons' Tudui in JAX: the command line of `experiments.train.train_and_evaluate`.

Run from the repository root::

    python experiments/main.py                                   # CIFAR-10 if available, else offline digits
    JAXLOSS_CIFAR10_DIR=path/to/cifar-10-batches-py python experiments/main.py --workdir runs/cifar10
    python experiments/main.py --config.learning_rate=0.02 --config.num_epochs=3 --workdir runs/lr0.02
    python experiments/main.py --workdir runs/cifar10 --resume   # continue an interrupted run
    python experiments/main.py --cpu_devices 2                   # data-parallel over 2 CPU devices (2 cores)

Several processes (hosts): start the same command in each, with ``--config.distributed.enabled=True`` and, where
JAX does not find them itself (SLURM, Open MPI, TPU pods), ``--config.distributed.coordinator_address=host:port
--config.distributed.num_processes=N --config.distributed.process_id=i`` (docs/training.md: "Many devices and hosts").
"""

import pathlib
import sys

import jax
from absl import app, flags

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import (
    cli,
    distributed,
    train,
)

_RESUME = flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its newest checkpoint.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices",
    None,
    "Make this many JAX devices of the CPU, to train data-parallel on its cores (JAX's CPU "
    "backend runs a convolution on one core); e.g. 2 on a 2-core machine.",
    lower_bound=1,
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = cli.config_from_flags()
    # Both before anything else touches JAX's devices.
    if _CPU_DEVICES.value is not None:
        jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
    if config.distributed.enabled:
        distributed.initialize_distributed(
            config.distributed.coordinator_address, config.distributed.num_processes, config.distributed.process_id
        )
    try:
        train.train_and_evaluate(config, cli.WORKDIR.value, resume=_RESUME.value)
    except (FileExistsError, FloatingPointError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    cli.run(main, default_workdir="runs/tudui")
