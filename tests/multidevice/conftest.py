"""The multi-device tests need JAX to see 4 CPU devices, which is fixed when JAX starts: `tests/test_multidevice.py`
runs them in a child process with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``. By hand::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest tests/multidevice
"""

import jax
import pytest

NUM_DEVICES = 4


@pytest.fixture(autouse=True, scope="session")
def four_devices():
    if jax.device_count() < NUM_DEVICES:
        pytest.fail(
            f"the multi-device tests need {NUM_DEVICES} devices, JAX sees {jax.device_count()}: run them "
            f"with XLA_FLAGS=--xla_force_host_platform_device_count={NUM_DEVICES}"
        )
