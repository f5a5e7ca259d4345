"""How the Tudui steps are compiled for XLA:CPU: convolutions on Eigen, which uses every core.

jaxlib 0.10's XLA:CPU hands each convolution to YNNPACK, which runs a convolution of Tudui's shapes in one piece,
on one thread (its graph splits only output channels and width, not the batch). With the YNNPACK fusion types
narrowed to dots and reductions, per jit (`compiler_options`, so nothing else in the process changes), the
convolutions go to Eigen, whose thread pool splits them over every core. This is done only where it was
measured to pay (docs/performance.md): on a single CPU device, with the jaxlib versions below. Over several CPU
devices (``--cpu_devices 2``) each device already keeps a core busy, and Eigen's pools would fight over them.

The model's CPU layout (`experiments.models`: conv1's channels padded to 4, kernel gradients summed over batch
chunks) is YNNPACK's, so that a step jitted without these options (by `nnx.jit`, or a user's own `jax.jit`)
stays fast; Eigen would be about 5% faster without it.
"""

from typing import Final

import jax
import jaxlib

# The jaxlib versions (major, minor) whose XLA:CPU was measured: YNNPACK convolutions on one thread, and the
# option below naming the YNNPACK fusion types (its default: individual dots and convolutions, and reductions).
_MEASURED_JAXLIB: Final = {(0, 10)}
_YNN_FUSION_TYPES: Final = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


def eigen_convolutions() -> bool:
    """Whether the steps compiled now run their convolutions on Eigen: on one CPU device, with a measured jaxlib."""
    version = tuple(int(part) for part in jaxlib.__version__.split(".")[:2])
    return jax.default_backend() == "cpu" and jax.local_device_count() == 1 and version in _MEASURED_JAXLIB


def compiler_options() -> dict[str, str] | None:
    """`jax.jit`'s `compiler_options` for a Tudui step: convolutions on Eigen where `eigen_convolutions()`."""
    return {"xla_cpu_experimental_ynn_fusion_type": _YNN_FUSION_TYPES} if eigen_convolutions() else None
