"""Arrays and weights between torch and JAX: tensors to arrays and back, torch's weight layouts to Flax's."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss.testing._torch import is_tensor, require_torch


def to_numpy(tree: Any) -> Any:
    """`tree` with every torch tensor (on any device, with or without grad) and array as a NumPy array.

    Args:
      tree: a pytree (dicts, lists, tuples, ...) of torch tensors, JAX arrays or array-likes; a torch
        `state_dict` is one.

    Returns:
      The same structure of NumPy arrays (a bfloat16 tensor becomes an ml_dtypes bfloat16 array).

    Example:
      >>> import torch
      >>> to_numpy({"weight": torch.ones(2, 3)})["weight"].shape
      (2, 3)
    """

    def leaf_to_numpy(leaf: Any) -> np.ndarray:
        if not is_tensor(leaf):
            return np.asarray(leaf)
        leaf = leaf.detach().cpu()
        if leaf.dtype == require_torch().bfloat16:  # NumPy has no bfloat16: through float32, exactly
            return np.asarray(leaf.float().numpy()).astype(jnp.bfloat16)
        return np.asarray(leaf.numpy())

    return jax.tree.map(leaf_to_numpy, tree, is_leaf=is_tensor)


def to_jax(tree: Any, dtype: Any = None) -> Any:
    """`tree` with every torch tensor and array as a JAX array.

    Args:
      tree: a pytree of torch tensors or array-likes, e.g. a `state_dict` or a model's inputs.
      dtype: cast floating arrays to this dtype; ``None`` keeps each one's. Integer and boolean arrays keep
        theirs (torch's int64 becomes JAX's default integer, int32 unless x64 is enabled).

    Returns:
      The same structure of JAX arrays.
    """

    def leaf_to_jax(leaf: np.ndarray) -> jax.Array:
        if dtype is not None and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, dtype)
        return jnp.asarray(leaf)

    return jax.tree.map(leaf_to_jax, to_numpy(tree))


def to_torch(tree: Any, dtype: Any = None, requires_grad: bool = False) -> Any:
    """`tree` with every array as a torch tensor on the CPU, e.g. to `load_state_dict` or to call torch.

    Args:
      tree: a pytree of JAX or NumPy arrays or array-likes.
      dtype: a NumPy dtype to cast floating arrays to first; ``None`` keeps each one's.
      requires_grad: make floating tensors leaves of torch's autograd graph.

    Returns:
      The same structure of torch tensors (copies: writing to them leaves `tree` alone). Integer arrays become
      int64, torch's index dtype; bfloat16 arrays become bfloat16 tensors.
    """

    def leaf_to_torch(leaf: Any) -> Any:
        array = np.asarray(leaf)
        if dtype is not None and jnp.issubdtype(array.dtype, jnp.floating):
            array = array.astype(dtype)
        torch = require_torch()
        if jnp.issubdtype(array.dtype, jnp.integer):
            return torch.tensor(array.astype(np.int64))
        if array.dtype == jnp.bfloat16:
            tensor = torch.tensor(array.astype(np.float32)).to(torch.bfloat16)
        else:
            tensor = torch.tensor(array)
        return tensor.requires_grad_(requires_grad and tensor.is_floating_point())

    return jax.tree.map(leaf_to_torch, tree)


def _host_or_jax(weight: Any) -> np.ndarray | jax.Array:
    """`weight` as a JAX array if it is one (traced ones too), otherwise as a NumPy array (torch tensors included):
    the layouts keep NumPy's float64 and JAX's traceability alike."""
    return weight if isinstance(weight, jax.Array) else np.asarray(to_numpy(weight))


def linear_kernel_from_torch(weight: Any) -> np.ndarray | jax.Array:
    """A Flax `Dense` kernel ``(in, out)`` from a torch `Linear` weight ``(out, in)``.

    A JAX array (traced too) gives a JAX array; a torch tensor or NumPy array gives a NumPy array.
    """
    return _host_or_jax(weight).T


def linear_kernel_to_torch(kernel: Any) -> np.ndarray:
    """A torch `Linear` weight ``(out, in)`` from a Flax `Dense` kernel ``(in, out)``, as a NumPy array."""
    return np.ascontiguousarray(np.asarray(kernel).T)


def conv_kernel_from_torch(weight: Any) -> np.ndarray | jax.Array:
    """A Flax `Conv` kernel ``(*spatial, in, out)`` from a torch `ConvNd` weight ``(out, in, *spatial)``.

    For 1-, 2- and 3-D convolutions (OIW, OIHW, OIDHW). A JAX array (traced too) gives a JAX array; a torch tensor
    or NumPy array gives a NumPy array.
    """
    array = _host_or_jax(weight)
    axes = (*range(2, array.ndim), 1, 0)
    return jnp.transpose(array, axes) if isinstance(array, jax.Array) else np.transpose(array, axes)


def conv_kernel_to_torch(kernel: Any) -> np.ndarray:
    """A torch `ConvNd` weight ``(out, in, *spatial)`` from a Flax `Conv` kernel ``(*spatial, in, out)``, as a
    NumPy array."""
    kernel = np.asarray(kernel)
    return np.ascontiguousarray(kernel.transpose(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2)))


def state_dict_to_flax(state_dict: Mapping[str, Any], modules: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """Flax parameters from a torch `state_dict` of `Linear`, `ConvNd`, `LayerNorm` and `GroupNorm` layers.

    Each torch module's ``weight`` becomes a ``kernel`` in Flax's layout (`linear_kernel_from_torch`,
    `conv_kernel_from_torch`; a 1-D weight, a norm layer's, becomes ``scale``) and ``bias`` stays ``bias``.
    Layouts that depend on the model, such as the rows of a `Linear` after torch's `Flatten` of an NCHW feature
    map, are the caller's to reorder; so are `BatchNorm`'s running statistics, which are not parameters.

    Args:
      state_dict: the torch model's `state_dict()` (tensors or arrays).
      modules: torch module name (the key's prefix, e.g. ``'features.0'``) -> Flax module name (``'Conv_0'``).

    Returns:
      ``{flax_name: {'kernel' or 'scale': ..., 'bias': ...}}`` of NumPy arrays, in the state_dict's dtypes; wrap
      it as ``{'params': ...}`` for Linen's ``apply``.

    Raises:
      ValueError: if a key of `state_dict` belongs to no module of `modules`, or is neither a weight nor a bias.

    Example:
      >>> import torch
      >>> torch_model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5), torch.nn.Flatten(), torch.nn.Linear(8, 2))
      >>> params = state_dict_to_flax(torch_model.state_dict(), {"0": "conv", "2": "dense"})
      >>> params["conv"]["kernel"].shape, params["dense"]["kernel"].shape
      ((5, 5, 3, 8), (8, 2))
    """
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        prefix, _, parameter = key.rpartition(".")
        if prefix not in modules or parameter not in ("weight", "bias"):
            raise ValueError(
                f"state_dict_to_flax: state_dict key {key!r} is not the weight or bias of a module in `modules` "
                f"({sorted(modules)})"
            )
        array = np.asarray(to_numpy(value))
        if parameter == "bias":
            name = "bias"
        elif array.ndim == 1:
            name = "scale"
        elif array.ndim == 2:
            name, array = "kernel", np.asarray(linear_kernel_from_torch(array))
        else:
            name, array = "kernel", np.asarray(conv_kernel_from_torch(array))
        params.setdefault(modules[prefix], {})[name] = array
    return params
