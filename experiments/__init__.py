"""Experiments on jaxloss: the lessons' Tudui CNN trained in JAX (`train.py`, run by `main.py`) and in torch
(`torch_reference.py`), with the seed lessons' demo (`demo.py`)."""
