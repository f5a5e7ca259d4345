"""The lessons' CIFAR-10 network ("Tudui") as a Flax module, channels-last, with torch's numbers.

torch's network (`experiments/torch_tudui.py`)::

    Conv2d(3, 32, 5, padding=2) -> MaxPool2d(2) -> Conv2d(32, 32, 5, padding=2) -> MaxPool2d(2)
    -> Conv2d(32, 64, 5, padding=2) -> MaxPool2d(2) -> Flatten -> Linear(1024, 64) -> Linear(64, 10)

The Flax module takes NHWC images and computes the same logits as torch's NCHW network on the same weights
(`experiments.torch_interop` converts them). Flax's Linen API is used because `Module.apply(params, x)` is a pure
function of a plain parameter pytree: the training step can be one `jax.jit`-compiled function of
`(params, opt_state, batch)` with no hidden state to split or merge. For Flax NNX code, `tudui_nnx` wraps this
same module with `flax.nnx.bridge.ToNNX`: one implementation, two APIs.
"""

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.custom_derivatives import SymbolicZero

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


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """torch's `MaxPool2d(2)` on NHWC input, with torch's gradient at ties and NaNs.

    The maximum of each 2x2 window (stride 2, no padding; an odd last row/column is dropped), found as torch's
    CPU kernel finds it: scan the window in row-major order and take an element when `value > max or
    isnan(value)`. Written as a chain of `where`s on a reshaped view, which XLA fuses into one loop: a windowed
    `reduce_window` (and its `select_and_scatter` gradient) is several times slower on XLA:CPU, and a `max`
    reduction there (YNNPACK's) can drop NaNs.

    Gradient: autodiff of the chain sends each window's gradient to the element the scan took, as torch does:
    the first maximum of a tie (plain autodiff of `max` would split it among tied elements, which happens on
    real images, whose flat regions give equal conv outputs), the last NaN of a window holding NaNs.

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
    windows = _window_view(x)
    top_left, top_right = windows[:, :, 0, :, 0], windows[:, :, 0, :, 1]
    bottom_left, bottom_right = windows[:, :, 1, :, 0], windows[:, :, 1, :, 1]
    pooled = top_left
    for value in (top_right, bottom_left, bottom_right):
        pooled = jnp.where((value > pooled) | jnp.isnan(value), value, pooled)
    return pooled


_CONV_DIMENSIONS = ("NHWC", "HWIO", "NHWC")

# On the CPU, the kernel gradient is summed over batch chunks whose output gradient takes at most this many
# bytes: XLA:CPU (YNNPACK) runs the kernel gradient of a whole batch of 64 at half speed once that operand
# outgrows the core's L2 cache (2 MiB here). conv1's (64, 32, 32, 32) float32 gradient goes in 8 chunks, conv2's
# in 2. Other backends take the whole batch in one convolution.
_KERNEL_GRADIENT_CHUNK_BYTES = 1 << 20


def _kernel_gradient_chunks(batch_size: int, bytes_per_row: int) -> int:
    """How many chunks the kernel gradient of a batch is summed over: 1 (unchunked) off the CPU.

    The count divides `batch_size` (chunk `c` holds rows `c, c + count, c + 2 count, ...`, see `_conv_jvp`);
    where no divisor is near the count the cache asks for, the batch is left whole.
    """
    if jax.default_backend() != "cpu":
        return 1
    wanted = max(1, -(-batch_size * bytes_per_row // _KERNEL_GRADIENT_CHUNK_BYTES))
    return next((count for count in range(wanted, 2 * wanted + 1) if batch_size % count == 0), 1)


def _convolve(x, kernel, padding, precision):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_CONV_DIMENSIONS, precision=precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _conv(x, kernel, padding, precision):
    """Stride-1 NHWC/HWIO convolution, laid out for XLA:CPU; the same sums as `lax.conv_general_dilated`.

    Input channels are zero-padded to a multiple of 4 (exact: the added products are 0 * 0): XLA:CPU runs
    conv1's 3-channel convolution about 4x slower than the same one with 4 channels.
    """
    extra = -x.shape[-1] % 4
    if extra:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
        kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra), (0, 0)))
    return _convolve(x, kernel, padding, precision)


def _conv_jvp(padding, precision, primals, tangents):
    x, kernel = primals
    x_dot, kernel_dot = tangents
    y = _conv(x, kernel, padding, precision)
    y_dot = []
    if not isinstance(x_dot, SymbolicZero):
        y_dot.append(_convolve(x_dot, kernel, padding, precision))
    if not isinstance(kernel_dot, SymbolicZero):
        # Linear in kernel_dot chunk by chunk, so reverse mode sums per-chunk kernel gradients (see above). Chunk
        # c takes every count-th row from row c, not a contiguous block: with the batch split over a mesh's
        # devices, every device then holds its own rows of every chunk, and no rows move between devices.
        count = _kernel_gradient_chunks(x.shape[0], y[0].size * y.dtype.itemsize)
        rows = x.reshape(x.shape[0] // count, count, *x.shape[1:])
        chunks = [_convolve(rows[:, chunk], kernel_dot, padding, precision) for chunk in range(count)]
        y_dot.append(jnp.stack(chunks, axis=1).reshape(y.shape))
    return y, sum(y_dot) if y_dot else jnp.zeros_like(y)


_conv.defjvp(_conv_jvp, symbolic_zeros=True)


def _tudui_conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
):
    """`lax.conv_general_dilated` as `nn.Conv` calls it for Tudui's layers (stride 1, undilated, NHWC), by `_conv`."""
    del dimension_numbers  # nn.Conv's channels-last numbers, which `_conv` uses
    if any(step != 1 for step in (*window_strides, *(lhs_dilation or ()), *(rhs_dilation or ()))) or (
        feature_group_count != 1
    ):
        raise ValueError("Tudui's convolution supports stride 1, no dilation and one feature group only")
    return _conv(lhs, rhs, tuple(map(tuple, padding)), precision)


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
            x = nn.Conv(
                features,
                (5, 5),
                padding=2,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                kernel_init=init,
                bias_init=init,
                conv_general_dilated=_tudui_conv_general_dilated,
                name=name,
            )(x)
            x = max_pool_2x2(x)
        # NHWC flatten; torch flattens NCHW, which torch_interop accounts for in dense1's kernel.
        x = x.reshape(x.shape[0], -1)
        for name, features in (("dense1", 64), ("dense2", self.num_classes)):
            init = torch_default_init(fan_in=x.shape[-1])
            x = nn.Dense(
                features, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=init, bias_init=init, name=name
            )(x)
        return x


def tudui_nnx(rngs: nnx.Rngs | jax.Array, **tudui_kwargs: Any) -> nnx.bridge.ToNNX:
    """Tudui as an initialised Flax NNX module: the Linen `Tudui` above, wrapped by `flax.nnx.bridge.ToNNX`.

    Calling the NNX module runs `Tudui.apply` on the parameters it holds, so its logits and gradients are the
    Linen module's, bit for bit, and no layer is written twice. Its parameters are `nnx.Param`s laid out as
    Linen's `params["params"]` (`model.conv1["kernel"]`, ..., `model.dense2["bias"]`), so that
    `nnx.Optimizer(model, tx, wrt=nnx.Param)` trains them all. It holds no random state: Tudui needs none
    after initialisation.

    Args:
        rngs: a key, with which the parameters equal `Tudui(**tudui_kwargs).init(rngs, images)["params"]`, or an
            `nnx.Rngs`, whose `params` stream (its default stream if it has none) draws that key.
        **tudui_kwargs: `Tudui`'s attributes: `num_classes`, `dtype`, `param_dtype`.

    Returns:
        The NNX module: `model(images)` maps NHWC images `(N, 32, 32, 3)` to logits `(N, num_classes)`.

    Example:
        >>> model = tudui_nnx(jax.random.key(0))
        >>> model(jnp.zeros((4, 32, 32, 3))).shape
        (4, 10)
        >>> linen_params = Tudui().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
        >>> bool((model.dense2["kernel"][...] == linen_params["dense2"]["kernel"]).all())
        True
    """
    # A bare key goes to Linen's `init` as its "params" key; an `nnx.Rngs` held by `ToNNX` would be forked and
    # folded first, and its state would then be part of the module's.
    key = rngs.params() if isinstance(rngs, nnx.Rngs) else rngs
    return nnx.bridge.ToNNX(Tudui(**tudui_kwargs)).lazy_init(jnp.zeros((1, *IMAGE_SHAPE)), rngs=key)
