"""jaxloss: PyTorch's losses in JAX, with torch's exact values and gradients."""

from jaxloss import functional as functional
from jaxloss import nn as nn
from jaxloss._checkify import checkify as checkify

__all__ = ["checkify", "functional", "nn"]

__version__ = "0.1.0"
