"""The lessons' CIFAR-10 network ("Tudui") as a Flax module, channels-last, with torch's numbers.

torch's network (`experiments/torch_tudui.py`)::

    Conv2d(3, 32, 5, padding=2) -> MaxPool2d(2) -> Conv2d(32, 32, 5, padding=2) -> MaxPool2d(2)
    -> Conv2d(32, 64, 5, padding=2) -> MaxPool2d(2) -> Flatten -> Linear(1024, 64) -> Linear(64, 10)

The Flax module takes NHWC images and computes the same logits as torch's NCHW network on the same weights
(`jaxloss.torch_interop` converts them). Flax's Linen API is used because `Module.apply(params, x)` is a pure
function of a plain parameter pytree: the training step can be one `jax.jit`-compiled function of
`(params, opt_state, batch)` with no hidden state to split or merge.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

IMAGE_SHAPE = (32, 32, 3)
"""The height, width and channels of the images Tudui takes (its `Linear(1024, 64)` fixes them)."""


def torch_default_init(fan_in: int):
    """torch's default initializer of `Conv2d`/`Linear` weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (torch draws weights with `kaiming_uniform_(a=sqrt(5))`, whose bound simplifies to the same 1/sqrt(fan_in).)
    The distribution is torch's; the random stream is JAX's, so the numbers differ from torch's for a seed.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _window_view(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, H//2, 2, W//2, 2, C), dropping an odd last row/column as torch's floor mode does."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_jvp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """torch's `MaxPool2d(2)` on NHWC input, with torch's gradient at ties.

    The maximum of each 2x2 window (stride 2, no padding; an odd last row/column is dropped). A reshape and a
    max reduction, which XLA:CPU runs much faster than a windowed `reduce_window`.

    Gradient: torch sends each window's gradient to one element, the first maximum in row-major window
    order; plain autodiff of `max` would split it among tied elements, which happens on real images (flat
    regions give equal conv outputs). A NaN counts as a maximum here (torch takes the last NaN of a window,
    this the first; either way the output is NaN).

    Args:
        x: `(N, H, W, C)` array.

    Returns:
        `(N, H // 2, W // 2, C)` array of window maxima.

    Example:
        >>> x = jnp.array([[1.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 2, 1)
        >>> jax.grad(lambda x: max_pool_2x2(x).sum())(x).reshape(2, 2)
        Array([[1., 0.],
               [0., 0.]], dtype=float32)
    """
    return _window_view(x).max(axis=(2, 4))


@max_pool_2x2.defjvp
def _max_pool_2x2_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    windows = _window_view(x)
    pooled = windows.max(axis=(2, 4))
    is_max = (windows == pooled[:, :, None, :, None, :]) | jnp.isnan(windows)
    # The first maximum in row-major order (dy, dx) = (0, 0), (0, 1), (1, 0), (1, 1) takes the tangent.
    top_left, top_right = is_max[:, :, 0, :, 0], is_max[:, :, 0, :, 1]
    bottom_left, bottom_right = is_max[:, :, 1, :, 0], is_max[:, :, 1, :, 1]
    top_right &= ~top_left
    top_any = top_left | top_right
    bottom_left &= ~top_any
    bottom_right &= ~(top_any | bottom_left)
    top_row = jnp.stack([top_left, top_right], axis=3)  # (N, H/2, W/2, 2, C)
    bottom_row = jnp.stack([bottom_left, bottom_right], axis=3)
    chosen = jnp.stack([top_row, bottom_row], axis=2)  # (N, H/2, 2, W/2, 2, C), as _window_view
    tangent = jnp.where(chosen, _window_view(dx), 0).sum(axis=(2, 4))
    return pooled, tangent


class Tudui(nn.Module):
    """The lessons' CIFAR-10 classifier: three conv 5x5 + 2x2 max-pool blocks, Flatten, Dense(64), Dense(10).

    No activations, as in the lessons. Layers are named `conv1`, `conv2`, `conv3`, `dense1`, `dense2`; kernels
    are HWIO and (in, out), initialised with torch's default distributions (`torch_default_init`).

    Attributes:
        num_classes: size of the last layer.
        dtype: the computation dtype (None: inferred from the inputs and parameters, as Flax does).
        param_dtype: the parameters' dtype.

    Example:
        >>> model = Tudui()
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
        >>> model.apply(params, jnp.zeros((4, 32, 32, 3))).shape
        (4, 10)
        >>> sum(p.size for p in jax.tree.leaves(params))
        145578
    """

    num_classes: int = 10
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        """Logits `(N, num_classes)` of NHWC `images` `(N, 32, 32, 3)` (floats; torch's ToTensor scale [0, 1])."""
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"Tudui: expected images of shape (N, 32, 32, 3) (NHWC), got {images.shape}")
        x = images
        for name, features in (("conv1", 32), ("conv2", 32), ("conv3", 64)):
            init = torch_default_init(fan_in=5 * 5 * x.shape[-1])
            x = nn.Conv(features, (5, 5), padding=2, dtype=self.dtype, param_dtype=self.param_dtype,
                        kernel_init=init, bias_init=init, name=name)(x)
            x = max_pool_2x2(x)
        # NHWC flatten; torch flattens NCHW, which torch_interop accounts for in dense1's kernel.
        x = x.reshape(x.shape[0], -1)
        for name, features in (("dense1", 64), ("dense2", self.num_classes)):
            init = torch_default_init(fan_in=x.shape[-1])
            x = nn.Dense(features, dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=init, bias_init=init, name=name)(x)
        return x
