"""Tudui weights between a torch `state_dict` and Flax parameters.

torch stores conv weights as OIHW and linear weights as (out, in); Flax as HWIO and (in, out). torch's
`Flatten` runs over an NCHW feature map and Flax's over NHWC, so the rows of the first linear layer's weight are
permuted as well; the per-layer layouts are `jaxloss.testing`'s. No function here imports torch: they take torch
tensors or arrays and give back NumPy arrays that `torch.from_numpy` turns into tensors. `tudui_nnx_load_torch` and
`tudui_nnx_to_torch` do the same for the Flax NNX Tudui (`experiments.models.tudui_nnx`), through the Linen
parameters that its `nnx.Param`s hold.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxloss.testing import (
    conv_kernel_from_torch,
    conv_kernel_to_torch,
    linear_kernel_from_torch,
    linear_kernel_to_torch,
    to_numpy,
)

# Flax layer name -> prefix of torch's state_dict key (the index in the lessons' `model1` Sequential).
_CONVS = {"conv1": "model1.0", "conv2": "model1.2", "conv3": "model1.4"}
_DENSES = {"dense1": "model1.7", "dense2": "model1.8"}
_CONV_CHANNELS = {"conv1": (3, 32), "conv2": (32, 32), "conv3": (32, 64)}  # (in, out)
_FEATURE_MAP = (64, 4, 4)  # conv3's pooled output (C, H, W), which Flatten turns into dense1's 1024 inputs
_HIDDEN = 64


def _torch_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """The shape of each entry of a torch Tudui's state_dict."""
    shapes = {}
    for name, prefix in _CONVS.items():
        in_channels, out_channels = _CONV_CHANNELS[name]
        shapes[f"{prefix}.weight"], shapes[f"{prefix}.bias"] = (out_channels, in_channels, 5, 5), (out_channels,)
    for prefix, (inputs, outputs) in zip(
        _DENSES.values(), ((np.prod(_FEATURE_MAP), _HIDDEN), (_HIDDEN, num_classes)), strict=True
    ):
        shapes[f"{prefix}.weight"], shapes[f"{prefix}.bias"] = (outputs, inputs), (outputs,)
    return shapes


def _checked_weights(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The state_dict's weights, after checking its keys and shapes against the lessons' Tudui: torch tensors as
    NumPy arrays, JAX arrays (traced ones too) as they are."""
    weights = {key: value if isinstance(value, jax.Array) else to_numpy(value) for key, value in state_dict.items()}
    num_classes = weights["model1.8.bias"].shape[0] if "model1.8.bias" in weights else 10
    expected = _torch_shapes(num_classes)
    missing, unexpected = expected.keys() - weights.keys(), weights.keys() - expected.keys()
    if missing or unexpected:
        raise ValueError(
            "tudui_params_from_torch: state_dict does not hold the lessons' Tudui: "
            f"missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
        )
    for key, shape in expected.items():
        if weights[key].shape != shape:
            raise ValueError(
                f"tudui_params_from_torch: state_dict[{key!r}] has shape {weights[key].shape}, expected {shape}"
            )
    return weights


def tudui_params_from_torch(state_dict: Mapping[str, Any], dtype=None) -> dict:
    """Flax `Tudui` parameters holding the weights of a torch Tudui's `state_dict`.

    Args:
        state_dict: torch Tudui's `state_dict()` (keys `model1.0.weight` ... `model1.8.bias`), torch tensors or
            arrays. With JAX arrays the conversion is traceable: differentiate through it to get gradients in
            torch's layout.
        dtype: the parameters' dtype; None keeps the state_dict's.

    Returns:
        `{'params': {'conv1': {'kernel', 'bias'}, ..., 'dense2': ...}}` of JAX arrays, for `Tudui.apply`.

    Raises:
        ValueError: if keys are missing or unexpected, or a weight has the wrong shape.

    Example:
        >>> import jax
        >>> from experiments.models import Tudui
        >>> params = Tudui().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
        >>> state = tudui_params_to_torch(params)
        >>> state["model1.7.weight"].shape
        (64, 1024)
        >>> back = tudui_params_from_torch(state)
        >>> bool((back["params"]["dense1"]["kernel"] == params["params"]["dense1"]["kernel"]).all())
        True
    """
    weights = _checked_weights(state_dict)
    params = {}
    for name, prefix in _CONVS.items():
        params[name] = {"kernel": conv_kernel_from_torch(weights[f"{prefix}.weight"])}
    # torch's Flatten turns the (C, H, W) feature map into input c*H*W + h*W + w; Flax's turns (H, W, C) into
    # h*W*C + w*C + c. So dense1's weight, seen as (out, C, H, W), is a convolution kernel over the whole feature
    # map: Flax's kernel is that kernel in Flax's layout, (H, W, C, out), flattened.
    feature_map_kernel = weights["model1.7.weight"].reshape(_HIDDEN, *_FEATURE_MAP)
    params["dense1"] = {"kernel": conv_kernel_from_torch(feature_map_kernel).reshape(-1, _HIDDEN)}
    params["dense2"] = {"kernel": linear_kernel_from_torch(weights["model1.8.weight"])}
    for name, prefix in {**_CONVS, **_DENSES}.items():
        params[name]["bias"] = weights[f"{prefix}.bias"]
    return {
        "params": {
            layer: {kind: jnp.asarray(array, dtype) for kind, array in arrays.items()}
            for layer, arrays in params.items()
        }
    }


def tudui_params_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A torch Tudui `state_dict` (as NumPy arrays) holding Flax `Tudui` parameters.

    Args:
        params: `Tudui` parameters, `{'params': {...}}` as `Tudui.init` returns them.

    Returns:
        `{'model1.0.weight': OIHW array, ..., 'model1.8.bias': ...}`; load it into torch with
        `model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})`.
    """
    layers = params["params"]
    state = {}
    for name, prefix in _CONVS.items():
        state[f"{prefix}.weight"] = conv_kernel_to_torch(layers[name]["kernel"])
    channels, height, width = _FEATURE_MAP  # dense1's kernel is a feature-map kernel (see tudui_params_from_torch)
    feature_map_kernel = np.asarray(layers["dense1"]["kernel"]).reshape(height, width, channels, _HIDDEN)
    state["model1.7.weight"] = conv_kernel_to_torch(feature_map_kernel).reshape(_HIDDEN, -1)
    state["model1.8.weight"] = linear_kernel_to_torch(layers["dense2"]["kernel"])
    for name, prefix in {**_CONVS, **_DENSES}.items():
        state[f"{prefix}.bias"] = np.asarray(layers[name]["bias"])
    order = _torch_shapes(num_classes=state["model1.8.bias"].shape[0])  # torch's order: layer by layer
    return {key: np.array(state[key], order="C") for key in order}  # writable copies for torch.from_numpy


def tudui_nnx_load_torch(model: nnx.Module, state_dict: Mapping[str, Any]) -> None:
    """Load a torch Tudui's `state_dict` into an NNX Tudui in place, as torch's `model.load_state_dict` does.

    As torch copies into its existing parameters, each weight is cast to the dtype of the parameter it replaces.

    Args:
        model: an NNX Tudui, from `experiments.models.tudui_nnx`.
        state_dict: torch Tudui's `state_dict()`, torch tensors or arrays (see `tudui_params_from_torch`).

    Raises:
        ValueError: if the state_dict does not hold a Tudui (see `tudui_params_from_torch`), or one with another
            number of classes than `model`.

    Example:
        >>> from experiments.models import tudui_nnx
        >>> model = tudui_nnx(jax.random.key(0))
        >>> state = tudui_nnx_to_torch(tudui_nnx(jax.random.key(1)))
        >>> tudui_nnx_load_torch(model, state)
        >>> bool((tudui_nnx_to_torch(model)["model1.8.weight"] == state["model1.8.weight"]).all())
        True
    """
    params = nnx.state(model, nnx.Param)
    loaded = tudui_params_from_torch(state_dict)["params"]

    def cast(path, current, new):
        if current.shape != new.shape:
            raise ValueError(
                f"tudui_nnx_load_torch: the state_dict's {jax.tree_util.keystr(path)} has shape {new.shape}, "
                f"the model's {current.shape}"
            )
        return new.astype(current.dtype)

    nnx.replace_by_pure_dict(params, jax.tree.map_with_path(cast, nnx.to_pure_dict(params), loaded))
    nnx.update(model, params)


def tudui_nnx_to_torch(model: nnx.Module) -> dict[str, np.ndarray]:
    """A torch Tudui `state_dict` (as NumPy arrays) holding an NNX Tudui's parameters, as torch's `state_dict()`.

    Args:
        model: an NNX Tudui, from `experiments.models.tudui_nnx`.

    Returns:
        What `tudui_params_to_torch` returns for the same weights in a Linen `Tudui`.
    """
    return tudui_params_to_torch({"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))})
