"""The metric writers (`experiments/metric_writers.py`): TensorBoard files read back, the log, fan-out, closing,
the default writer of each process; and the config as hyperparameters (`experiments.reporting.config_hparams`)."""

import logging
import pathlib
import struct

import jax
import numpy as np
import pytest
from tensorboardX.proto import event_pb2, plugin_hparams_pb2

from experiments import metric_writers, reporting
from experiments.configs import default

HPARAMS_TAG = "_hparams_/session_start_info"  # TensorBoard's HParams plugin reads a run's values under this tag


def tensorboard_events(directory: pathlib.Path) -> list:
    """Every event of the TFRecord event files in `directory` (length, crc, payload, crc per record)."""
    events = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            events.append(event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length]))
            offset += 12 + length + 4
    return events


def scalars_of(events: list) -> dict:
    """`{(tag, step): value}` of the scalar summaries among `events`."""
    return {
        (value.tag, event.step): value.simple_value
        for event in events
        for value in event.summary.value
        if value.HasField("simple_value")
    }


def hparams_of(events: list) -> list[dict]:
    """The hyperparameters of each HParams session start among `events`, in order, as Python values."""
    sessions = []
    for event in events:
        for value in event.summary.value:
            if value.tag == HPARAMS_TAG:
                content = plugin_hparams_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                hparams = content.session_start_info.hparams
                sessions.append({name: getattr(v, v.WhichOneof("kind")) for name, v in hparams.items()})
    return sessions


class RecordingWriter(metric_writers.MetricWriter):
    """Notes every call into a list that several writers may share; raises in `close` if asked to."""

    def __init__(self, name: str, calls: list, *, fail_to_close: bool = False):
        self._name, self._calls, self._fail_to_close = name, calls, fail_to_close

    def write_scalars(self, step, scalars):
        self._calls.append((self._name, "write_scalars", step, dict(scalars)))

    def write_hparams(self, hparams):
        self._calls.append((self._name, "write_hparams", dict(hparams)))

    def flush(self):
        self._calls.append((self._name, "flush"))

    def close(self):
        self._calls.append((self._name, "close"))
        if self._fail_to_close:
            raise OSError(f"{self._name} cannot close")


def test_tensorboard_writer_writes_scalars_and_hparams_into_one_run(tmp_path):
    writer = metric_writers.TensorBoardWriter(tmp_path)
    writer.write_hparams({"learning_rate": 0.01, "nesterov": False, "dataset": "digits", "seed": 3, "unset": None})
    writer.write_scalars(1, {"train/loss": 2.5, "train/accuracy": np.float32(0.25)})
    writer.write_scalars(2, {"train/loss": jax.numpy.asarray(1.5)})
    writer.close()

    assert [path.parent for path in tmp_path.rglob("events.out.tfevents.*")] == [tmp_path]  # no sub-run
    events = tensorboard_events(tmp_path)
    assert scalars_of(events) == {("train/loss", 1): 2.5, ("train/accuracy", 1): 0.25, ("train/loss", 2): 1.5}
    # Numbers are stored as doubles; None has no HParams value and is left out.
    assert hparams_of(events) == [{"learning_rate": 0.01, "nesterov": False, "dataset": "digits", "seed": 3.0}]


def test_tensorboard_writer_flush_puts_the_events_on_disk(tmp_path):
    writer = metric_writers.TensorBoardWriter(tmp_path)
    writer.write_hparams({"seed": 0})
    writer.write_scalars(7, {"train/loss": 0.5})
    writer.flush()  # tensorboardX would otherwise hold them for up to two minutes
    events = tensorboard_events(tmp_path)
    assert scalars_of(events) == {("train/loss", 7): 0.5} and hparams_of(events) == [{"seed": 0.0}]
    writer.close()


def test_tensorboard_writer_purges_from_purge_step_in_a_file_of_its_own(tmp_path):
    first = metric_writers.TensorBoardWriter(tmp_path)
    first.write_scalars(5, {"loss": 1.0})
    first.close()
    resumed = metric_writers.TensorBoardWriter(tmp_path, purge_step=4)  # at once: within the same second
    resumed.write_scalars(4, {"loss": 2.0})
    resumed.close()

    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    events = tensorboard_events(tmp_path)
    assert [event.step for event in events if event.HasField("session_log")] == [4]
    assert [(event.step, event.summary.value[0].simple_value) for event in events if event.summary.value] == [
        (5, 1.0),
        (4, 2.0),
    ]


def test_logging_writer_logs_scalars_and_hparams(caplog):
    caplog.set_level(logging.INFO, logger="absl")
    writer = metric_writers.LoggingWriter(collection="train")
    writer.write_hparams({"learning_rate": 0.01})
    writer.write_scalars(3, {"train/loss": 2.0 / 3, "epoch": 1})
    writer.close()
    assert caplog.messages == [
        "[Hyperparameters] collection=train {'learning_rate': 0.01}",
        "[3] collection=train epoch=1, train/loss=0.666667",
    ]


def test_multi_writer_fans_out_in_order():
    calls = []
    writer = metric_writers.MultiWriter([RecordingWriter("a", calls), RecordingWriter("b", calls)])
    writer.write_hparams({"seed": 0})
    writer.write_scalars(2, {"loss": 1.0})
    writer.flush()
    assert calls == [
        ("a", "write_hparams", {"seed": 0}),
        ("b", "write_hparams", {"seed": 0}),
        ("a", "write_scalars", 2, {"loss": 1.0}),
        ("b", "write_scalars", 2, {"loss": 1.0}),
        ("a", "flush"),
        ("b", "flush"),
    ]


def test_multi_writer_closes_every_writer_when_one_fails():
    calls = []
    writer = metric_writers.MultiWriter(
        [RecordingWriter("a", calls, fail_to_close=True), RecordingWriter("b", calls), RecordingWriter("c", calls)]
    )
    with pytest.raises(OSError, match="a cannot close"):
        writer.close()
    assert calls == [("a", "close"), ("b", "close"), ("c", "close")]


@pytest.mark.parametrize("process_index, writes_files", [(0, True), (1, False)])
def test_the_default_writer_logs_and_process_0_alone_writes_tensorboard(
    process_index, writes_files, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="absl")
    monkeypatch.setattr(jax, "process_index", lambda: process_index)
    logdir = tmp_path / "tensorboard"
    writer = metric_writers.create_default_writer(logdir)
    writer.write_hparams({"seed": 0})
    writer.write_scalars(1, {"train/loss": 0.5})
    writer.close()

    assert caplog.messages == ["[Hyperparameters] {'seed': 0}", "[1] train/loss=0.5"]
    if writes_files:
        events = tensorboard_events(logdir)
        assert scalars_of(events) == {("train/loss", 1): 0.5} and hparams_of(events) == [{"seed": 0.0}]
    else:
        assert not logdir.exists()


def test_the_default_writer_without_a_logdir_only_logs(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    monkeypatch.chdir(tmp_path)
    writer = metric_writers.create_default_writer(just_logging=False)
    writer.write_scalars(1, {"train/loss": 0.5})
    writer.close()
    assert caplog.messages == ["[1] train/loss=0.5"] and not list(tmp_path.iterdir())


def test_config_hparams_flattens_the_whole_config():
    config = default.get_config()
    config.distributed.process_id = 2
    config.unlock()
    config.milestones = (3, 6)
    hparams = reporting.config_hparams(config)

    assert hparams["learning_rate"] == 0.01 and hparams["nesterov"] is False and hparams["dataset"] == "auto"
    assert hparams["distributed.enabled"] is False and hparams["distributed.process_id"] == 2
    assert hparams["num_devices"] is None and hparams["milestones"] == "(3, 6)"
    assert "distributed" not in hparams
    # Every leaf of the config, and nothing else.
    leaves = {
        f"{section}.{key}" if section else key
        for section, fields in [("", config), ("distributed", config.distributed)]
        for key, value in fields.items()
        if not isinstance(value, type(config))
    }
    assert set(hparams) == leaves
