"""Experiments on jaxloss: the lessons' Tudui CNN trained in JAX (`train.py`, run by `main.py`) and in torch
(`torch_reference.py`), and the PyTorch lessons rebuilt in JAX (`lessons/`)."""
