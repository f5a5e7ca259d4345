"""The Flax Tudui against torch's: logits and gradients on the same weights, the max-pool tie rule, interop."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F

from experiments.models import Tudui, max_pool_2x2
from experiments.torch_interop import tudui_params_from_torch, tudui_params_to_torch
from experiments.torch_tudui import TorchTudui
from jaxloss.functional import cross_entropy
from jaxloss.testing import Tolerance, assert_parity, to_numpy

# float32: the two networks sum the same products in different orders (oneDNN vs XLA convolutions).
TOLERANCES = {"float32": Tolerance(rtol=1e-5, atol=1e-5), "float64": Tolerance(rtol=1e-10, atol=1e-12)}


def blocky_images(rng: np.random.Generator, n: int) -> np.ndarray:
    """uint8 NHWC images of 8x8 flat blocks: flat regions make equal conv outputs, so max-pool windows tie."""
    blocks = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    return blocks.repeat(8, axis=1).repeat(8, axis=2)


def torch_model(dtype, seed: int = 0) -> TorchTudui:
    torch.manual_seed(seed)
    return TorchTudui().to(torch.float64 if dtype == np.float64 else torch.float32)


def exactly_summing(model: TorchTudui) -> TorchTudui:
    """`model` with its parameters rounded to multiples of 2**-10.

    With images in multiples of 2**-8 too, every conv1 output is a sum of exact products that float64 (and
    float32) add without rounding, in whatever order a library sums them: a flat region's equal outputs stay
    exactly equal on both sides, so the max pools' ties are the same ties in torch and in JAX. Unrounded, an
    x86 CPU's vector kernels may sum two positions of a flat region in different orders (it depends on the
    CPU), which breaks a tie in one library only and sends the gradient elsewhere.
    """
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.round(parameter * 1024) / 1024)
    return model


def dyadic_images(images_uint8: np.ndarray, dtype) -> np.ndarray:
    """uint8 HWC -> float HWC in [0, 1), by 1/256 (exact in binary floating point, unlike ToTensor's 1/255)."""
    return images_uint8.astype(dtype) / dtype(256)


def tied_pools_case() -> dict[str, Any]:
    """Arguments for a parity check of a Tudui's loss and logits, on images whose max pools tie.

    Returns:
        ``{"state": ..., "images": ..., "labels": ...}``: an exactly summing torch Tudui's `state_dict` (NumPy,
        torch's layout), ``(8, 32, 32, 3)`` HWC images (six blocky ones and two of noise) and their labels.
        Both are exact in float32 and float64, so one case serves both dtypes.
    """
    rng = np.random.default_rng(0)
    images = np.concatenate([blocky_images(rng, 6), rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)])
    state = to_numpy(exactly_summing(torch_model(np.float64)).state_dict())
    return {"state": state, "images": dyadic_images(images, np.float64), "labels": rng.integers(0, 10, len(images))}


def torch_loss_and_logits(state, images, labels):
    """The lessons' loss of a torch Tudui holding `state`, on NHWC `images`, and its logits."""
    logits = torch.func.functional_call(TorchTudui(), state, (images.permute(0, 3, 1, 2),))
    return torch_F.cross_entropy(logits, labels), logits


def assert_matches_torch(loss_and_logits, dtype: str) -> None:
    """Asserts that `loss_and_logits(state, images, labels)`, a JAX Tudui's loss and logits for a torch
    `state_dict`, equals torch's on `tied_pools_case`: loss, logits, and gradients with respect to every weight (in
    torch's layout) and every pixel, in `dtype`, under jit."""
    assert_parity(
        loss_and_logits,
        torch_loss_and_logits,
        tied_pools_case(),
        grad=["state", "images"],
        dtypes=[dtype],
        modes=["jit"],
        tolerance=TOLERANCES,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_and_gradients_match_torch(dtype):
    def loss_and_logits(state, images, labels):
        logits = Tudui().apply(tudui_params_from_torch(state), images)
        return cross_entropy(logits, labels), logits

    assert_matches_torch(loss_and_logits, dtype)


@pytest.mark.parametrize("shape", [(2, 4, 4, 3), (1, 5, 7, 2)], ids=["even", "odd"])
def test_max_pool_matches_torch_at_ties(shape):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, size=shape).astype(np.float32)  # zeros and ones: most windows tie
    cotangent = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)

    torch_x = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
    torch_y = torch_F.max_pool2d(torch_x, 2)
    torch_y.backward(torch.from_numpy(cotangent).permute(0, 3, 1, 2))

    y, vjp = jax.vjp(max_pool_2x2, jnp.asarray(x))
    np.testing.assert_array_equal(y, torch_y.detach().permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(vjp(jnp.asarray(cotangent))[0], torch_x.grad.permute(0, 2, 3, 1).numpy())


def test_max_pool_forward_mode_equals_reverse_mode():
    x = jnp.asarray(np.random.default_rng(2).integers(0, 3, size=(1, 4, 4, 2)).astype(np.float32))
    jacobian_forward = jax.jacfwd(max_pool_2x2)(x)
    jacobian_reverse = jax.jacrev(max_pool_2x2)(x)
    np.testing.assert_array_equal(jacobian_forward, jacobian_reverse)


def test_max_pool_propagates_nan():
    x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 1, 0].set(jnp.nan)
    assert jnp.isnan(max_pool_2x2(x)).all()
    assert jax.grad(lambda x: max_pool_2x2(x).sum())(x)[0, 1, 1, 0] == 1


def test_max_pool_keeps_nan_in_large_arrays_under_jit():
    # XLA:CPU's max reduction (YNNPACK) has been seen to drop a NaN in arrays of this size.
    x = jnp.zeros((4, 32, 32, 3)).at[1, 7, 9, 2].set(jnp.nan)
    pooled = jax.jit(max_pool_2x2)(x)
    assert jnp.isnan(pooled[1, 3, 4, 2]) and jnp.isnan(pooled).sum() == 1


def test_parameter_count_and_torch_init_distribution():
    params = jax.jit(Tudui().init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    torch_state = TorchTudui().state_dict()
    assert sum(p.size for p in jax.tree.leaves(params)) == sum(v.numel() for v in torch_state.values()) == 145578
    # torch draws every weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    for key, value in tudui_params_to_torch(params).items():
        bound = 1 / np.sqrt(torch_state[key.replace("bias", "weight")][0].numel())
        assert np.abs(value).max() <= bound
        assert np.abs(value).max() > 0.9 * bound, key


def test_state_dict_round_trip_is_exact():
    state = {k: v.numpy() for k, v in torch_model(np.float32).state_dict().items()}
    back = tudui_params_to_torch(tudui_params_from_torch(state))
    assert back.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(back[key], state[key])
    model = TorchTudui()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})


def test_rejects_foreign_state_dicts():
    state = TorchTudui().state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['model1.8.bias'\]"):
        tudui_params_from_torch({k: v for k, v in state.items() if k != "model1.8.bias"})
    with pytest.raises(ValueError, match=r"state_dict\['model1.0.weight'\] has shape \(32, 3, 3, 3\)"):
        tudui_params_from_torch({**state, "model1.0.weight": torch.zeros(32, 3, 3, 3)})


def test_rejects_images_of_the_wrong_shape():
    params = jax.jit(Tudui().init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 32, 32, 3\) \(NHWC\), got \(1, 3, 32, 32\)"):
        Tudui().apply(params, jnp.zeros((1, 3, 32, 32)))
