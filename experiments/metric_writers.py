"""Metric writers with the interface of `clu.metric_writers`, and TensorBoard files written by tensorboardX.

`MetricWriter` is clu's interface cut to what the experiment writes: `write_scalars(step, scalars)`,
`write_hparams(hparams)`, `flush()` and `close()`. `LoggingWriter`, `MultiWriter` and `create_default_writer`
behave as clu's do (`create_default_writer` also takes TensorBoard's `purge_step`, for resumed runs), and
`TensorBoardWriter` stands in for clu's `SummaryWriter`: code that writes through these methods runs unchanged
with clu's writers.

Why not clu itself: `import clu.metric_writers` (clu 0.0.12, its newest release) imports TensorFlow, which clu
does not declare as a dependency. The package's `__init__` imports its TensorFlow `SummaryWriter`, so even its
TensorFlow-free modules (`interface`, `logging_writer`, `multi_writer`) cannot be imported without it, and the
experiment does not install TensorFlow (a ~600 MB wheel) to write scalars. tensorboardX writes the same event
files from plain Python.

Why not tensorboardX's `SummaryWriter` either: it hands events to a thread through a queue, and its `flush()`
(tensorboardX 2.6.5) flushes the file without waiting for the events still in the queue, so what was written
before a checkpoint could be lost by a kill after it. `TensorBoardWriter` writes its events synchronously, with
tensorboardX's `EventsWriter` (the record file under `SummaryWriter`'s thread): after `flush()` they are on disk.
"""

import abc
import contextlib
import os
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import tensorboardX
from absl import logging
from tensorboardX import event_file_writer
from tensorboardX.proto import event_pb2, summary_pb2

Scalar = int | float | np.number | np.ndarray | jax.Array
"""A number, or an array holding one (NumPy or JAX, of any shape with one element)."""
HParam = bool | int | float | str | None
"""A hyperparameter's value: `reporting.config_hparams` flattens a config to these."""


class MetricWriter(abc.ABC):
    """Writes a run's metrics somewhere: clu's `MetricWriter` interface, for the values this experiment has."""

    @abc.abstractmethod
    def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
        """Writes scalars that occurred at `step`.

        Consecutive calls may give different sets of scalars; a scalar is written at most once per step.

        Args:
            step: the training step the values belong to.
            scalars: metric name (e.g. 'train/loss') to value.
        """

    @abc.abstractmethod
    def write_hparams(self, hparams: Mapping[str, HParam]) -> None:
        """Writes the run's hyperparameters, once, before its metrics.

        Args:
            hparams: a flat mapping from hyperparameter name to value.
        """

    @abc.abstractmethod
    def flush(self) -> None:
        """Writes out everything written so far that is still buffered."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flushes and releases the writer; it must not be used afterwards."""


class LoggingWriter(MetricWriter):
    """Writes metrics to the INFO log (absl), one line per call, as clu's `LoggingWriter` does.

    Args:
        collection: a name added to every line (e.g. 'train' or 'eval'), if any.
    """

    def __init__(self, collection: str | None = None):
        self._collection = f" collection={collection}" if collection else ""

    def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
        values = ", ".join(
            f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in sorted(scalars.items())
        )
        logging.info("[%d]%s %s", step, self._collection, values)

    def write_hparams(self, hparams: Mapping[str, HParam]) -> None:
        logging.info("[Hyperparameters]%s %s", self._collection, dict(hparams))

    def flush(self) -> None:
        logging.flush()

    def close(self) -> None:
        self.flush()


class MultiWriter(MetricWriter):
    """Writes everything to each of several writers, in order.

    Args:
        writers: the writers to fan out to.
    """

    def __init__(self, writers: Sequence[MetricWriter]):
        self._writers = tuple(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
        for writer in self._writers:
            writer.write_scalars(step, scalars)

    def write_hparams(self, hparams: Mapping[str, HParam]) -> None:
        for writer in self._writers:
            writer.write_hparams(hparams)

    def flush(self) -> None:
        for writer in self._writers:
            writer.flush()

    def close(self) -> None:
        """Closes every writer, in order, even when some raise (the error then propagates once all are closed)."""
        with contextlib.ExitStack() as closing:
            for writer in reversed(self._writers):  # an ExitStack unwinds last in, first out
                closing.callback(writer.close)


class TensorBoardWriter(MetricWriter):
    """Writes a TensorBoard event file into `logdir`, with tensorboardX (no TensorFlow).

    Each writer starts an event file of its own in `logdir`; TensorBoard shows the files of a directory as one
    run. Event files are named by the second they were opened: a suffix of nanoseconds keeps a run resumed
    within the same second from truncating the file of the run before it, and sorts after it.

    Args:
        logdir: the directory of the event files (created if missing).
        purge_step: if given, TensorBoard hides the events this directory already holds from this step on: those
            of the steps after the checkpoint that a resumed run starts from, which it writes again.
    """

    def __init__(self, logdir: str | os.PathLike, *, purge_step: int | None = None):
        os.makedirs(logdir, exist_ok=True)
        self._events = event_file_writer.EventsWriter(os.path.join(logdir, "events"), f".{time.time_ns()}")
        if purge_step is not None:
            # A restart marker: TensorBoard drops the events of this run it has read from `purge_step` on.
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._events.write_event(event_pb2.Event(wall_time=time.time(), step=purge_step, session_log=start))

    def _write_summary(self, step: int, summary: summary_pb2.Summary) -> None:
        self._events.write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
        """Writes `scalars` at `step`, all in one event."""
        values = [
            value
            for tag, scalar in scalars.items()
            for value in tensorboardX.summary.scalar(tag, np.asarray(scalar).item()).value
        ]
        self._write_summary(step, summary_pb2.Summary(value=values))

    def write_hparams(self, hparams: Mapping[str, HParam]) -> None:
        """Writes `hparams` for TensorBoard's HParams dashboard, into this run (no sub-run, unlike tensorboardX's
        `add_hparams`).

        Only the session's start is written, as TensorFlow's `hparams_api.hparams` (clu's writer) does:
        TensorBoard then lists the run's scalars as its metrics. None values are left out: HParams have no null.
        """
        _, session_start, _ = tensorboardX.summary.hparams(dict(hparams), {})
        self._write_summary(0, session_start)

    def flush(self) -> None:
        """Puts everything written so far on disk (flushed and fsynced)."""
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def create_default_writer(
    logdir: str | os.PathLike | None = None,
    *,
    just_logging: bool | None = None,
    purge_step: int | None = None,
    collection: str | None = None,
) -> MultiWriter:
    """The writer of a run: the log, and TensorBoard files in `logdir`, as clu's `create_default_writer`.

    Unlike clu's, the writer is synchronous (clu's is asynchronous by default): writing a few scalars every
    so many steps costs microseconds, and a synchronous `flush()` is one that a checkpoint can rely on.

    Args:
        logdir: the directory of the TensorBoard event files; None writes none.
        just_logging: write only to the log. None (the default) means `jax.process_index() > 0`, asked when
            called (after `jax.distributed.initialize`): in a run of several processes, the first alone writes
            files, and the others log.
        purge_step: `TensorBoardWriter`'s: the step a resumed run restarts the event files from.
        collection: `LoggingWriter`'s name for its lines.

    Returns:
        A `MultiWriter` of a `LoggingWriter` and, unless `just_logging` or no `logdir`, a `TensorBoardWriter`.
    """
    if just_logging is None:
        just_logging = jax.process_index() > 0
    writers: list[MetricWriter] = [LoggingWriter(collection)]
    if logdir is not None and not just_logging:
        writers.append(TensorBoardWriter(logdir, purge_step=purge_step))
    return MultiWriter(writers)
