"""The Flax NNX Tudui (`tudui_nnx`): the Linen Tudui's init, logits and gradients, torch's numbers, interop, training.

The NNX module wraps the Linen one, so it is held to the Linen module exactly and to torch with the tolerances of
`tests/test_models.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from experiments import xla_cpu
from experiments.input_pipeline import IGNORE_INDEX
from experiments.models import IMAGE_SHAPE, Tudui, tudui_nnx
from experiments.torch_interop import tudui_nnx_load_torch, tudui_nnx_to_torch, tudui_params_from_torch
from experiments.torch_tudui import TorchTudui
from experiments.train_steps import make_train_step, torch_sgd
from jaxloss.functional import cross_entropy
from tests.test_models import (
    assert_matches_torch,
    blocky_images,
    dyadic_images,
    tied_pools_case,
    torch_model,
)


def linen_params(model: nnx.Module) -> dict:
    """The NNX Tudui's parameters as Linen `Tudui` variables, `{'params': {...}}`."""
    return {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}


def assert_trees_equal(actual, expected) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(np.testing.assert_array_equal, actual, expected)


@pytest.mark.parametrize(
    "param_dtype, dtype",
    [(jnp.float32, None), (jnp.float32, jnp.bfloat16), (jnp.float64, None)],
    ids=["f32", "f32-params-bf16-compute", "f64"],
)
def test_init_equals_linen_init_for_the_same_key(param_dtype, dtype):
    with jax.enable_x64(param_dtype == jnp.float64):
        kwargs = dict(num_classes=7, param_dtype=param_dtype, dtype=dtype)
        images = jnp.zeros((1, *IMAGE_SHAPE))
        expected = jax.jit(Tudui(**kwargs).init)(jax.random.key(3), images)
        model = tudui_nnx(jax.random.key(3), **kwargs)
        assert_trees_equal(linen_params(model), expected)
        # Only parameters, all of them `nnx.Param`s: what `nnx.Optimizer(..., wrt=nnx.Param)` trains is everything.
        assert jax.tree.structure(nnx.to_pure_dict(nnx.state(model))) == jax.tree.structure(expected["params"])
        assert all(
            isinstance(v, nnx.Param)
            for v in jax.tree.leaves(nnx.state(model), is_leaf=lambda v: isinstance(v, nnx.Variable))
        )
        # `nnx.Rngs`: its `params` stream, or its default stream without one, draws the key.
        for rngs in (nnx.Rngs(params=5), nnx.Rngs(5)):
            expected = jax.jit(Tudui(**kwargs).init)(nnx.Rngs(5).params(), images)
            assert_trees_equal(linen_params(tudui_nnx(rngs, **kwargs)), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_and_gradients_match_torch(dtype):
    """Loading a torch `state_dict` into the NNX module (inside the differentiated function, as a user's port would
    do it) gives torch's loss, logits and gradients."""

    def loss_and_logits(state, images, labels):
        model = tudui_nnx(jax.random.key(0), param_dtype=state["model1.0.weight"].dtype)
        tudui_nnx_load_torch(model, state)
        logits = model(images)
        return cross_entropy(logits, labels), logits

    assert_matches_torch(loss_and_logits, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_logits_and_gradients_equal_linen(dtype):
    case = tied_pools_case()
    images, labels = case["images"].astype(dtype), case["labels"]
    with jax.enable_x64(dtype == np.float64):
        state = {key: value.astype(dtype) for key, value in case["state"].items()}
        model = tudui_nnx(jax.random.key(0), param_dtype=dtype)
        tudui_nnx_load_torch(model, state)
        images_jax = jnp.asarray(images)

        @nnx.jit
        def nnx_loss_and_grads(model, images):
            def loss(model, images):
                logits = model(images)
                return cross_entropy(logits, jnp.asarray(labels)), logits

            return nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(model, images)

        (_, logits), (param_grads, image_grads) = nnx_loss_and_grads(model, images_jax)
        assert logits.dtype == dtype

        def linen_loss(params, images):
            logits = Tudui(param_dtype=dtype).apply(params, images)
            return cross_entropy(logits, jnp.asarray(labels)), logits

        linen_value_and_grad = jax.jit(jax.value_and_grad(linen_loss, argnums=(0, 1), has_aux=True))
        (_, expected_logits), (expected_param_grads, expected_image_grads) = linen_value_and_grad(
            tudui_params_from_torch(state), images_jax
        )
        np.testing.assert_array_equal(logits, expected_logits)
        assert_trees_equal(linen_params(param_grads), expected_param_grads)
        np.testing.assert_array_equal(image_grads, expected_image_grads)


def test_state_dict_round_trip_is_exact():
    state = {k: v.numpy() for k, v in torch_model(np.float32).state_dict().items()}
    model = tudui_nnx(jax.random.key(0))
    tudui_nnx_load_torch(model, state)
    back = tudui_nnx_to_torch(model)
    assert back.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(back[key], state[key])
    TorchTudui().load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    # The loaded NNX module computes what the Linen module does on the converted weights.
    images = jnp.asarray(np.random.default_rng(1).uniform(size=(2, *IMAGE_SHAPE)), jnp.float32)
    np.testing.assert_array_equal(model(images), Tudui().apply(tudui_params_from_torch(state), images))


def test_load_casts_to_the_models_dtype_and_rejects_other_class_counts():
    state = TorchTudui().double().state_dict()  # float64 weights into a float32 model, as torch's load would
    model = tudui_nnx(jax.random.key(0))
    tudui_nnx_load_torch(model, state)
    assert {leaf.dtype for leaf in jax.tree.leaves(nnx.to_pure_dict(nnx.state(model)))} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(tudui_nnx_to_torch(model)["model1.8.bias"], state["model1.8.bias"].float().numpy())

    five_classes = {**state, "model1.8.weight": torch.zeros(5, 64), "model1.8.bias": torch.zeros(5)}
    with pytest.raises(ValueError, match=r"\['dense2'\]\['bias'\] has shape \(5,\), the model's \(10,\)"):
        tudui_nnx_load_torch(model, five_classes)


def test_nnx_train_step_in_lock_step_with_make_train_step(monkeypatch):
    # `nnx.jit` takes no compiler options: both steps compiled with XLA's defaults (YNNPACK convolutions).
    monkeypatch.setattr(xla_cpu, "eigen_convolutions", lambda: False)
    rng = np.random.default_rng(2)
    batch = {
        "image": jnp.asarray(dyadic_images(blocky_images(rng, 8), np.float32)),
        "label": jnp.asarray(np.append(rng.integers(0, 10, size=7), IGNORE_INDEX)),  # a padded row
    }
    optimizer = torch_sgd(0.01, momentum=0.9)  # momentum: the optimizer's state carries over between steps

    model = tudui_nnx(jax.random.key(0))
    nnx_optimizer = nnx.Optimizer(model, optimizer, wrt=nnx.Param)

    @nnx.jit
    def nnx_train_step(model, nnx_optimizer, batch):
        def loss_fn(model):
            return cross_entropy(model(batch["image"]), batch["label"], ignore_index=IGNORE_INDEX)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        nnx_optimizer.update(model, grads)
        return loss

    params = jax.jit(Tudui().init)(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE)))
    opt_state = optimizer.init(params)
    train_step = make_train_step(Tudui(), optimizer)

    losses = []
    for _ in range(3):
        nnx_loss = nnx_train_step(model, nnx_optimizer, batch)
        params, opt_state, metrics = train_step(params, opt_state, batch)
        np.testing.assert_array_equal(nnx_loss, metrics["loss"])
        assert_trees_equal(linen_params(model), params)
        losses.append(float(nnx_loss))
    assert losses[-1] < losses[0]
