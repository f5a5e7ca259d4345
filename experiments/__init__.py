"""Experiments built on jaxloss: the lessons' Tudui CNN trained in JAX (`train.py`) and in torch (`torch_reference.py`)."""
