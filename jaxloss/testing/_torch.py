"""torch, for `jaxloss.testing`: imported when a comparison first needs it, with an error that says how to install
it, so that the conversion helpers work without torch."""

import sys
from types import ModuleType
from typing import Any


def require_torch() -> ModuleType:
    """The torch module; raises `ModuleNotFoundError` naming what to install when torch is missing."""
    try:
        import torch
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "jaxloss.testing compares with torch, which is not installed: pip install 'jaxloss[test]' "
            "(or torch 2.13 or 2.14)"
        ) from error
    return torch


def is_tensor(value: Any) -> bool:
    """Whether `value` is a torch tensor, without importing torch (if torch is not imported, nothing is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
