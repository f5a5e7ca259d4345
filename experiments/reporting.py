"""Per-epoch metrics of a training run: the record, its printed line, its JSONL file, and the run's hyperparameters.

Both trainers (`experiments.train` in JAX, `experiments.torch_reference` in torch) report through this module
and `experiments.metric_writers` (the log and TensorBoard, `workdir/tensorboard`), so their lines and files can
be compared side by side.
"""

import json
import os
import pathlib
from collections.abc import Mapping

import ml_collections

from experiments import metric_writers

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
TIMING_KEYS = ("images_per_second", "epoch_seconds", "elapsed_seconds")
"""Record keys measured by the clock: they differ between otherwise identical runs."""


def epoch_record(
    *,
    epoch: int,
    step: int,
    summed_loss: float,
    num_batches: int,
    test: Mapping[str, float],
    train_images: int,
    train_seconds: float,
    elapsed_seconds: float,
) -> dict:
    """The metrics of one finished epoch, as written to `metrics.jsonl`.

    Args:
        epoch: the epoch's number, from 1.
        step: the number of training steps taken when the epoch ended (over the whole run).
        summed_loss: the sum over the epoch's batches of each batch's mean loss: the lessons' `running_loss`.
        num_batches: the epoch's number of batches.
        test: the evaluation's sums over the test set: ``loss_sum`` (the loss summed over every image),
            ``correct`` (the number classified correctly) and ``count`` (the number of images).
        train_images: the number of training images the epoch saw.
        train_seconds: the wall time of the epoch's training steps (not the evaluation).
        elapsed_seconds: the wall time since the run began, evaluation included.

    Returns:
        A dict of JSON-serialisable numbers; `TIMING_KEYS` are the clock-dependent ones.
    """
    return {
        "epoch": epoch,
        "step": step,
        "summed_loss": summed_loss,
        "mean_loss": summed_loss / num_batches,
        "test_loss": test["loss_sum"] / test["count"],
        "test_accuracy": test["correct"] / test["count"],
        "images_per_second": train_images / train_seconds,
        "epoch_seconds": train_seconds,
        "elapsed_seconds": elapsed_seconds,
    }


def format_epoch(record: Mapping[str, float], num_epochs: int) -> str:
    """The line printed for an epoch, e.g. ``epoch  1/10  summed loss 1698.3311  mean loss 2.1718 ...``."""
    width = len(str(num_epochs))
    return (
        f"epoch {record['epoch']:>{width}}/{num_epochs}  summed loss {record['summed_loss']:.4f}  "
        f"mean loss {record['mean_loss']:.4f}  test loss {record['test_loss']:.4f}  "
        f"test accuracy {100 * record['test_accuracy']:.2f}%  {record['images_per_second']:,.0f} images/s  "
        f"elapsed {record['elapsed_seconds']:.1f} s"
    )


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The records of `workdir`'s `metrics.jsonl` (none if it does not exist), ignoring a torn last line."""
    path = pathlib.Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # Only the last line can be torn (a run killed while writing it); it is rewritten on resume.
            break
    return records


def epoch_scalars(record: Mapping[str, float]) -> dict[str, float]:
    """An `epoch_record` as the scalars written at its step: 'epoch/' before each metric's name."""
    return {f"epoch/{key}": value for key, value in record.items() if key not in ("epoch", "step")}


def config_hparams(config: ml_collections.ConfigDict) -> dict[str, metric_writers.HParam]:
    """Every field of `config` as a hyperparameter, nested names joined by '.' (e.g. 'distributed.enabled').

    Booleans, numbers, strings and None (an unset placeholder) are kept as they are; any other value (a list, a
    tuple) becomes its `str`.
    """

    def flatten(fields: Mapping, prefix: str) -> dict[str, metric_writers.HParam]:
        flat = {}
        for key, value in fields.items():
            if isinstance(value, Mapping):
                flat.update(flatten(value, f"{prefix}{key}."))
            else:
                flat[f"{prefix}{key}"] = (
                    value if value is None or isinstance(value, bool | int | float | str) else str(value)
                )
        return flat

    return flatten(config.to_dict(), "")


class MetricsFile:
    """`workdir/metrics.jsonl`: the epoch records of a run, one JSON object a line, each on disk once appended.

    The file starts after `start_step`: records of later steps (left by an interrupted run that is now resumed
    from `start_step`) are dropped when it is opened, so that none is written twice.

    Args:
        workdir: the run's directory (created if missing).
        start_step: the training step the run resumes after (0 for a fresh run).
    """

    def __init__(self, workdir: str | os.PathLike, *, start_step: int = 0):
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        kept = [record for record in read_metrics(workdir) if record["step"] <= start_step]
        path = workdir / METRICS_FILE
        temporary = path.with_suffix(".jsonl.tmp")
        with open(temporary, "w") as file:
            file.writelines(json.dumps(record) + "\n" for record in kept)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic: a kill now leaves the old file or the new one
        self._file = open(path, "a")

    def append(self, record: Mapping[str, float]) -> None:
        """Appends an `epoch_record`, and returns once it is on disk (so that a kill after it loses none of it)."""
        self._file.write(json.dumps(dict(record)) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
