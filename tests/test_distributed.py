"""Data parallelism (`experiments.distributed`): the mesh helpers here, on one device; the 4-device equivalence tests
in a child process that sees 4 CPU devices; and a real two-process run over loopback (`jax.distributed`)."""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import checkpointing, distributed, reporting, train
from experiments.input_pipeline import IGNORE_INDEX, epoch_batches
from tests.test_train import small_config

pytestmark = pytest.mark.filterwarnings("ignore:the load_module\\(\\) method is deprecated:DeprecationWarning")

REPO = pathlib.Path(__file__).parents[1]


def test_a_mesh_of_every_device_by_default():
    mesh = distributed.data_mesh()
    assert mesh.axis_names == (distributed.DATA_AXIS,) and mesh.size == jax.device_count()
    assert distributed.process_rows() == (0, 1)
    distributed.check_batch_size(64, mesh.size)


@pytest.mark.parametrize("num_devices", [0, jax.device_count() + 1])
def test_a_mesh_needs_devices_that_exist(num_devices):
    with pytest.raises(ValueError, match=rf"`num_devices` must be in \[1, {jax.device_count()}\].*got {num_devices}"):
        distributed.data_mesh(num_devices)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((None, 0, None), r"`num_processes` must be >= 1; got 0"),
        (("localhost:1", 2, 2), r"`process_id` must be in \[0, num_processes = 2\); got 2"),
        (("localhost:1", None, -1), r"`process_id` must be in .* got -1"),
    ],
)
def test_initialize_distributed_checks_its_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize_distributed(*arguments)


def test_process_shards_of_a_batch_make_up_the_batch():
    images, labels = np.arange(10 * 2).reshape(10, 2), np.arange(10, dtype=np.int32)
    whole = list(epoch_batches(images, labels, 8, seed=3, epoch=1))
    shards = [list(epoch_batches(images, labels, 8, seed=3, epoch=1, shard=(index, 4))) for index in range(4)]
    for batch_index, batch in enumerate(whole):
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([shard[batch_index][key] for shard in shards]), batch[key])
    # The last batch holds 2 real rows: process 0's; the other processes' rows are all padding.
    assert shards[0][-1]["label"].tolist() != [IGNORE_INDEX] * 2
    assert all(shard[-1]["label"].tolist() == [IGNORE_INDEX] * 2 for shard in shards[1:])


@pytest.mark.parametrize(
    "shard, error, message",
    [
        ((1, 3), ValueError, r"`batch_size` 8 must be divisible by the shard count 3"),
        ((2, 2), ValueError, r"`shard` index must be in \[0, 2\); got 2"),
        ((0, 0), ValueError, r"`shard count` must be >= 1"),
        (3, TypeError, r"`shard` must be a pair \(index, count\); got 3"),
    ],
)
def test_bad_shards_are_refused(shard, error, message):
    with pytest.raises(error, match=message):
        epoch_batches(np.zeros((4, 1)), np.zeros(4, np.int32), 8, shard=shard)


def test_the_multidevice_tests_pass_on_four_simulated_devices():
    """tests/multidevice: 4-device runs equal 1-device runs (Tudui, losses with ignored shards, checkpoints)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/multidevice"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_two_processes_train_as_one(tmp_path):
    """`experiments/main.py` in two processes of 2 CPU devices each (`--cpu_devices`; gloo collectives over
    loopback) trains as one process on one device."""
    config = dict(dataset="digits", num_epochs=1, batch_size=32, checkpoint_every_steps=20)
    flags = [f"--config.{key}={value}" for key, value in config.items()]
    address = f"localhost:{free_port()}"
    workdir = tmp_path / "two_processes"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "experiments/main.py",
                f"--workdir={workdir}",
                "--compilation_cache_dir=",
                "--cpu_devices=2",
                *flags,
                "--config.distributed.enabled=True",
                f"--config.distributed.coordinator_address={address}",
                "--config.distributed.num_processes=2",
                f"--config.distributed.process_id={index}",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], "\n".join(output[-3000:] for output in outputs)
    assert "Devices: 4 x cpu in 2 process(es), 8 images each of every batch of 32" in outputs[0]
    assert "epoch 1/1" in outputs[0] and "epoch" not in outputs[1]  # process 0 alone reports
    # and alone writes TensorBoard events (process 1's default writer only logs).
    assert len(list((workdir / reporting.TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 1

    expected = train.train_and_evaluate(small_config(**config, num_devices=1), tmp_path / "one_process")
    records = reporting.read_metrics(workdir)
    assert [record["step"] for record in records] == [record["step"] for record in expected.records]
    for got, want in zip(records, expected.records, strict=True):
        assert got["summed_loss"] == pytest.approx(want["summed_loss"], rel=1e-5)
        assert got["test_accuracy"] == want["test_accuracy"]
    # The checkpoint the two processes wrote together holds the single-process weights, up to float32 rounding:
    # sums in other orders, 46 steps on. (The drift grows with the steps: 1.2e-5 after 182 steps of 16 images,
    # 7.7e-5 in a few conv2 weights where a max-pool near-tie flipped; seen here: 3.5e-6.)
    checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=1)
    state, progress = checkpointer.restore(
        checkpointer.latest_step(), like={"params": expected.params, "opt_state": expected.opt_state}
    )
    checkpointer.close()
    assert progress["step"] == expected.step
    for got, want in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(expected.params), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=2e-5)
