"""Suite-wide settings."""

import os

import torch

# Under pytest-xdist every worker is a process of its own: torch's default of one OpenMP thread per core would
# put (workers x cores) spinning threads on the cores and slow every worker down. One thread each.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
