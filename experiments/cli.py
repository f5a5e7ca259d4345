"""Command-line flags shared by the trainers (`main.py` for JAX, `torch_reference.py` for torch)."""

import pathlib
from collections.abc import Callable

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import datasets

WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run: metrics, TensorBoard, checkpoints.")
CONFIG = config_flags.DEFINE_config_file(
    "config",
    str(pathlib.Path(__file__).parent / "configs" / "default.py"),
    "Training configuration file; override single fields with e.g. --config.learning_rate=0.02.",
    lock_config=True,
)
SEED = flags.DEFINE_integer("seed", None, "Shorthand for --config.seed.")
DATASET = flags.DEFINE_enum("dataset", None, datasets.DATASET_NAMES, "Shorthand for --config.dataset.")
CIFAR10_DIR = flags.DEFINE_string(
    "cifar10_dir",
    None,
    "Shorthand for --config.cifar10_dir: a cifar-10-batches-py folder or "
    "cifar-10-python.tar.gz (default: the JAXLOSS_CIFAR10_DIR environment variable).",
)


def config_from_flags() -> ml_collections.ConfigDict:
    """The --config file with its --config.* overrides, then the shorthand flags that were given."""
    config = CONFIG.value
    for field, flag in (("seed", SEED), ("dataset", DATASET), ("cifar10_dir", CIFAR10_DIR)):
        if flag.value is not None:
            config[field] = flag.value
    return config


def run(main: Callable[[list[str]], None], *, default_workdir: str) -> None:
    """`absl.app.run(main)` with --workdir's default set, and libraries' logs (orbax's) from WARNING up."""

    def main_with_quiet_libraries(argv: list[str]) -> None:
        if not flags.FLAGS["verbosity"].present:  # --verbosity=0 shows orbax's INFO lines again
            logging.set_verbosity(logging.WARNING)
        main(argv)

    flags.FLAGS.set_default("workdir", default_workdir)
    app.run(main_with_quiet_libraries)
