"""jaxloss: PyTorch's losses in JAX, with torch's exact values and gradients."""

from jaxloss import functional as functional

__version__ = "0.1.0"
