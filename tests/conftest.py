"""Suite-wide settings."""

import os

import torch

# tests/multidevice needs 4 devices, which JAX fixes when it starts: tests/test_multidevice.py runs it in a child
# process that has them (XLA_FLAGS), and the suite's own processes leave it alone.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    collect_ignore = ["multidevice"]

# Under pytest-xdist every worker is a process of its own: torch's default of one OpenMP thread per core would
# put (workers x cores) spinning threads on the cores and slow every worker down. One thread each.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
