"""Data-parallel training over a device mesh, on one host or many, with JAX's own SPMD partitioning.

A run lays its devices out as a one-axis `jax.sharding.Mesh` (axis `"data"`): every batch is split along that axis,
one slice per device, while parameters and optimizer state are replicated. The training step stays the same
`jax.jit` function: given arrays with these shardings, XLA partitions it and inserts the all-reduces, so a loss's
mean (`cross_entropy` with `ignore_index`, `weight`, ...) is the mean over the *global* batch, exactly as on one
device, and not a mean of per-device means.

Across hosts (`jax.distributed.initialize`), every process runs the same program; each gathers only its own rows
of every global batch (`process_rows`) from the in-memory dataset, and `experiments.input_pipeline.prefetch_to_device`
assembles them into one global array without copying between hosts.

Example (one host; on several, call `initialize_distributed` first)::

    mesh = data_mesh()                                  # all devices of all processes
    check_batch_size(64, mesh.size)
    params = jax.device_put(params, replicated(mesh))
    opt_state = jax.device_put(optimizer.init(params), replicated(mesh))
    batches = epoch_batches(images, labels, 64, seed=seed, epoch=epoch, shard=process_rows())
    for batch in prefetch_to_device(batches, sharding=batch_sharding(mesh)):
        params, opt_state, metrics = train_step(params, opt_state, batch)
"""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
"""The mesh axis that batches are split along."""


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Joins this process to a multi-process run (`jax.distributed.initialize`); call before any other JAX work.

    Arguments left None are found by JAX: `coordinator_address` from `$JAX_COORDINATOR_ADDRESS`, and all three
    from the cluster where JAX detects one (SLURM, Open MPI, Kubernetes, Cloud TPU pods).

    Args:
        coordinator_address: `host:port` of process 0, which every process can reach.
        num_processes: how many processes take part.
        process_id: this process's index, in `[0, num_processes)`.

    Raises:
        ValueError: if `num_processes` or `process_id` is out of range.
    """
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"initialize_distributed: `num_processes` must be >= 1; got {num_processes}.")
    if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
        raise ValueError(
            f"initialize_distributed: `process_id` must be in [0, num_processes = {num_processes}); got {process_id}."
        )
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh (`DATA_AXIS`) over the first `num_devices` devices, or all of them (of every process).

    The devices are in `jax.devices()` order, process by process, so each process's devices hold one contiguous
    block of every batch: the rows `process_rows` gives it. The axis type is `Auto`: XLA propagates shardings
    through the step, which therefore needs no annotations.

    Args:
        num_devices: how many devices, >= 1; None for all. In a multi-process run it must be all of them.

    Returns:
        A `jax.sharding.Mesh` with the single axis `"data"`.

    Raises:
        ValueError: if `num_devices` is out of range, or not all devices in a multi-process run.
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"data_mesh: `num_devices` must be in [1, {len(devices)}] (the devices JAX sees: "
            f"{devices[0].platform} x {len(devices)}); got {num_devices}."
        )
    if jax.process_count() > 1 and num_devices != len(devices):
        raise ValueError(
            f"data_mesh: a run of {jax.process_count()} processes uses all {len(devices)} devices; "
            f"got `num_devices` = {num_devices}."
        )
    return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters and optimizer state: a full copy on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: its first axis split evenly over the devices of `mesh`."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, num_devices: int) -> None:
    """Raises ValueError unless the global `batch_size` splits evenly over `num_devices` (e.g. ``mesh.size``)."""
    if batch_size % num_devices:
        raise ValueError(
            f"batch_size {batch_size} must be divisible by the number of devices ({num_devices}): "
            f"each device takes an equal slice of every batch. Use a multiple of {num_devices}, or "
            f"fewer devices (num_devices)."
        )


def process_rows() -> tuple[int, int]:
    """This process's part of every batch, as `(index, count)`: rows `[index * B / count, (index + 1) * B / count)`.

    `(0, 1)` in a single-process run. Pass it to
    `experiments.input_pipeline.epoch_batches(..., shard=process_rows())`, and put the batches on the mesh with
    `experiments.input_pipeline.prefetch_to_device(..., sharding=batch_sharding(mesh))`.
    """
    return jax.process_index(), jax.process_count()
