"""Trains the lessons' Tudui in JAX: the command line of `experiments.train.train_and_evaluate`.

Run from the repository root::

    python experiments/main.py                                   # CIFAR-10 if available, else offline digits
    JAXLOSS_CIFAR10_DIR=path/to/cifar-10-batches-py python experiments/main.py --workdir runs/cifar10
    python experiments/main.py --config.learning_rate=0.02 --config.num_epochs=3 --workdir runs/lr0.02
    python experiments/main.py --workdir runs/cifar10 --resume   # continue an interrupted run
    python experiments/main.py --workdir runs/cifar10 --resume_step 4000  # ... from the checkpoint of step 4000
    python experiments/main.py --cpu_devices 2                   # data-parallel over 2 CPU devices (2 cores)

Several processes (hosts): start the same command in each, with ``--config.distributed.enabled=True`` and, where
JAX does not find them itself (SLURM, Open MPI, TPU pods), ``--config.distributed.coordinator_address=host:port
--config.distributed.num_processes=N --config.distributed.process_id=i`` (docs/training.md: "Many devices and hosts").

An error the user can fix (`experiments.errors.RunError`: a bad setting, data, workdir or checkpoint; a run already
in the workdir; a NaN loss; a full disk; an interruption) stops the command with one line on stderr, ``error: ...``,
and a non-zero exit status (`RunError.exit_code`: 1, or 130 and 143 after Ctrl-C and SIGTERM); any other error is
a bug, and keeps its traceback.
"""

import pathlib
import sys

import jax
from absl import app, flags

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import compilation_cache, distributed, errors, train


class ConfigError(errors.RunError, ValueError):
    """A command-line setting that cannot work: --cpu_devices once JAX has started, distributed fields out of range."""


with errors.exit_on_config_flag_errors():
    # Defining --config reads the default config file and applies the --config.<field> overrides of sys.argv.
    from experiments import cli

_RESUME = flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its newest intact checkpoint.")
_RESUME_STEP = flags.DEFINE_integer(
    "resume_step",
    None,
    "Continue the run in --workdir from the checkpoint of this step (implies --resume); newer checkpoints are "
    "moved to checkpoints_set_aside.",
    lower_bound=1,
)
_COMPILATION_CACHE_DIR = flags.DEFINE_string(
    "compilation_cache_dir",
    str(compilation_cache.DEFAULT_DIR),
    "JAX's persistent compilation cache: a repeated run loads its compiled steps from here instead of compiling "
    "them (first step about 0.2 s instead of 0.9 s on a 2-core CPU); empty to turn it off.",
)
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices",
    None,
    "Make this many JAX devices of the CPU, to train data-parallel on its cores (JAX's CPU "
    "backend runs a convolution on one core); e.g. 2 on a 2-core machine.",
    lower_bound=1,
)


def _use_cpu_devices(count: int) -> None:
    """Makes `count` JAX devices of the CPU; JAX must not have started yet."""
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as error:  # JAX's devices are fixed once it has started
        raise ConfigError(
            f"--cpu_devices={count}: JAX has already started, with {jax.device_count()} device(s), and cannot "
            "make others; give --cpu_devices to a new process"
        ) from error


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    with errors.exit_on_user_errors(cli.WORKDIR.value, resumable=True):
        config = cli.config_from_flags()
        if _COMPILATION_CACHE_DIR.value:
            compilation_cache.enable(_COMPILATION_CACHE_DIR.value)
        # Both before anything else touches JAX's devices.
        if _CPU_DEVICES.value is not None:
            _use_cpu_devices(_CPU_DEVICES.value)
        if config.distributed.enabled:
            try:
                distributed.initialize_distributed(
                    config.distributed.coordinator_address,
                    config.distributed.num_processes,
                    config.distributed.process_id,
                )
            except ValueError as error:  # num_processes or process_id out of range
                raise ConfigError(str(error)) from error
        train.train_and_evaluate(config, cli.WORKDIR.value, resume=_RESUME.value, resume_step=_RESUME_STEP.value)


if __name__ == "__main__":
    with errors.exit_on_config_flag_errors():  # with --config=file, ml_collections reads it while absl parses the flags
        cli.run(main, default_workdir="runs/tudui")
