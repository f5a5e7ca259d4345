"""Per-epoch metrics of a training run: the record, its printed line, its JSONL file, and the run's hyperparameters.

Both trainers (`experiments.train` in JAX, `experiments.torch_reference` in torch) report through this module
and `experiments.metric_writers` (the log and TensorBoard, `workdir/tensorboard`), so their lines and files can
be compared side by side.

`metrics.jsonl` is strict JSON, one object a line: a NaN or infinite number is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"`` (JSON has no such numbers), and `read_metrics` reads it back as the float.
"""

import datetime
import json
import math
import os
import pathlib
from collections.abc import Mapping

import ml_collections
from absl import logging

from experiments import metric_writers

METRICS_FILE = "metrics.jsonl"
DAMAGED_SUFFIX = ".damaged"
"""`metrics.jsonl.damaged`: the lines of `metrics.jsonl` that were not records, set aside by `MetricsFile`."""
TENSORBOARD_DIR = "tensorboard"
TIMING_KEYS = ("images_per_second", "epoch_seconds", "elapsed_seconds")
"""Record keys measured by the clock: they differ between otherwise identical runs."""
# How metrics.jsonl spells the floats JSON has no numbers for.
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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


def encode_record(record: Mapping[str, float]) -> str:
    """`record` as one line of `metrics.jsonl` (without the newline): strict JSON, non-finite floats as strings.

    Raises:
        ValueError: if a value other than a top-level float is not finite (JSON cannot hold it).
    """
    values = {
        key: _non_finite_name(value) if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in record.items()
    }
    return json.dumps(values, allow_nan=False)


def _non_finite_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def decode_record(line: bytes) -> dict | None:
    """The record a line of `metrics.jsonl` holds, or None if the line is damaged.

    A line is damaged if it is not UTF-8, not JSON (torn by a kill, blank), or not a JSON object with an integer
    ``"step"``. The strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are read as the floats they stand for
    (as are the bare tokens that older versions wrote).
    """
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError
        return None
    if not isinstance(record, dict) or type(record.get("step")) is not int:
        return None
    return {
        key: _NON_FINITE[value] if isinstance(value, str) and value in _NON_FINITE else value
        for key, value in record.items()
    }


def _read_lines(path: pathlib.Path) -> tuple[list[dict], list[tuple[int, bytes]]]:
    """The records of the file at `path` (none if it does not exist) and its damaged lines, numbered from 1."""
    if not path.exists():
        return [], []
    lines = path.read_bytes().split(b"\n")
    if lines[-1] == b"":  # the newline that ends the last line
        lines.pop()
    records, damaged = [], []
    for number, line in enumerate(lines, start=1):
        record = decode_record(line)
        if record is None:
            damaged.append((number, line))
        else:
            records.append(record)
    return records, damaged


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The records of `workdir`'s `metrics.jsonl` (none if it does not exist), in order.

    Damaged lines (see `decode_record`: a line torn by a kill, a bad byte, a blank line, a line that is not a
    record) are skipped with a warning, and every good record is kept, after them too. The file is only read:
    `MetricsFile` sets the damaged lines aside when a run reopens it.
    """
    path = pathlib.Path(workdir) / METRICS_FILE
    records, damaged = _read_lines(path)
    if damaged:
        logging.warning(
            "%s: skipped %d damaged line(s) (%s), which are not JSON records", path, len(damaged), _numbers(damaged)
        )
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
    from `start_step`) are dropped when it is opened, so that none is written twice. Damaged lines (see
    `decode_record`) are moved, with their line numbers, to the end of `metrics.jsonl.damaged` beside it, with a
    warning naming that file; the good records around them are all kept. The file is rewritten through a
    temporary file renamed over it, after the damaged lines are safe on disk, so that a run killed meanwhile
    leaves the old file or the new one, and loses no record.

    Args:
        workdir: the run's directory (created if missing).
        start_step: the training step the run resumes after (0 for a fresh run).
    """

    def __init__(self, workdir: str | os.PathLike, *, start_step: int = 0):
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / METRICS_FILE
        records, damaged = _read_lines(path)
        if damaged:
            _set_aside(path, damaged)
        kept = [record for record in records if record["step"] <= start_step]
        temporary = path.with_name(METRICS_FILE + ".tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            file.writelines(encode_record(record) + "\n" for record in kept)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic: a kill now leaves the old file or the new one
        _fsync_directory(workdir)  # the rename itself is on disk
        self._file = open(path, "a", encoding="utf-8")

    def append(self, record: Mapping[str, float]) -> None:
        """Appends an `epoch_record`, and returns once it is on disk (so that a kill after it loses none of it)."""
        self._file.write(encode_record(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _set_aside(path: pathlib.Path, damaged: list[tuple[int, bytes]]) -> None:
    """Appends the `(line number, line)` pairs of `path` to its `.damaged` file, on disk before it returns."""
    set_aside = path.with_name(path.name + DAMAGED_SUFFIX)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    with open(set_aside, "ab") as file:
        file.write(f"# {now}: the damaged lines of {path.name}, set aside when a run reopened it\n".encode())
        for number, line in damaged:
            file.write(f"line {number}: ".encode() + line + b"\n")  # the bytes as they were, bad ones too
        file.flush()
        os.fsync(file.fileno())
    logging.warning(
        "%s: %d damaged line(s) (%s) set aside in %s; every good record is kept",
        path,
        len(damaged),
        _numbers(damaged),
        set_aside,
    )


def _numbers(damaged: list[tuple[int, bytes]]) -> str:
    """'line 3' or 'lines 2, 5': the numbers of the damaged lines."""
    return ("line " if len(damaged) == 1 else "lines ") + ", ".join(str(number) for number, _ in damaged)


def _fsync_directory(directory: pathlib.Path) -> None:
    """Commits `directory`'s entries (a rename in it) to disk, where the platform allows it (not on Windows)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
