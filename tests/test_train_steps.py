"""torch_sgd against torch.optim.SGD, and Tudui trained in lock-step with torch for 50 steps."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from experiments.input_pipeline import IGNORE_INDEX
from experiments.models import Tudui
from experiments.torch_interop import tudui_params_from_torch
from experiments.torch_tudui import TorchTudui
from experiments.train_steps import make_eval_step, make_train_step, torch_sgd

DTYPES = {"f32": np.float32, "f64": np.float64}
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
SGD_OPTIONS = {
    "plain": dict(),
    "momentum": dict(momentum=0.9),
    "nesterov_decay": dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
    "decay_maximize": dict(weight_decay=0.1, maximize=True),
}


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("options", SGD_OPTIONS.values(), ids=SGD_OPTIONS.keys())
def test_torch_sgd_matches_torch_optim_sgd(options, dtype_name):
    dtype = DTYPES[dtype_name]
    rng = np.random.default_rng(0)
    start = {"w": rng.normal(size=(3, 4)).astype(dtype), "b": rng.normal(size=(4,)).astype(dtype)}
    gradients = [{k: rng.normal(size=v.shape).astype(dtype) for k, v in start.items()} for _ in range(4)]

    torch_params = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    torch_optimizer = torch.optim.SGD(torch_params.values(), lr=0.1, **options)
    with jax.enable_x64(dtype == np.float64):
        optimizer = torch_sgd(0.1, **options)
        params = jax.tree.map(jnp.asarray, start)
        state = optimizer.init(params)
        for gradient in gradients:
            for key, value in torch_params.items():
                value.grad = torch.from_numpy(gradient[key])
            torch_optimizer.step()
            updates, state = optimizer.update(jax.tree.map(jnp.asarray, gradient), state, params)
            params = jax.tree.map(lambda p, u: p + u, params, updates)
        for key, value in torch_params.items():
            assert params[key].dtype == dtype
            # float32: torch fuses p - lr * g into one rounding (fmadd), optax rounds twice: ulp-level differences.
            tolerance = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
            np.testing.assert_allclose(params[key], value.detach().numpy(), **tolerance)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(learning_rate=-0.1), "learning_rate must be >= 0, got -0.1"),
        (dict(learning_rate=0.1, momentum=-1), "momentum must be >= 0"),
        (dict(learning_rate=0.1, weight_decay=-1), "weight_decay must be >= 0"),
        (dict(learning_rate=0.1, momentum=0.9, dampening=0.5), "dampening must be 0"),
        (dict(learning_rate=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
    ],
)
def test_torch_sgd_rejects_what_torch_rejects(arguments, message):
    with pytest.raises(ValueError, match=message):
        torch_sgd(**arguments)


def synthetic_dataset(n: int, seed: int = 0):
    """uint8 NHWC images of flat 8x8 blocks (so max-pool windows tie, as on real images) and labels."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    images = blocks.repeat(8, axis=1).repeat(8, axis=2)
    noise = rng.integers(0, 2, size=images.shape, dtype=np.uint8)  # half the pixels nudged: some ties remain
    return images + noise * (images < 255), rng.integers(0, 10, size=n).astype(np.int32)


def fixed_batches(images, labels, batch_size):
    """Batches in order, the last one padded with zero images and IGNORE_INDEX labels; and its real size."""
    for start in range(0, len(images), batch_size):
        image, label = images[start : start + batch_size], labels[start : start + batch_size]
        real = len(label)
        padding = batch_size - real
        yield (
            {
                "image": np.pad(image, ((0, padding), (0, 0), (0, 0), (0, 0))),
                "label": np.pad(label, (0, padding), constant_values=IGNORE_INDEX),
            },
            real,
        )


# Max |difference| reached on this machine over the 50 steps, losses and final weights:
# - float64: ~1e-15 for both option sets: the two computations are the same algorithm.
# - float32, the lessons' SGD: ~4e-7 (losses), up to ~8e-6 (weights): the two libraries sum conv products in
#   different orders, and where a 2x2 pool window holds values equal up to rounding, the maximum (and so the
#   gradient's route) can flip to a neighbour; the test's data meets one such flip.
# - float32, momentum 0.9: up to ~8e-4, because momentum on this tiny dataset amplifies float32 rounding
#   differences (summation order in convolutions) step after step; float64 shows they are only rounding.
LOCKSTEP_TOLERANCES = {
    ("lessons_sgd", np.float32): dict(rtol=1e-5, atol=2e-5),
    ("nesterov_decay", np.float32): dict(rtol=1e-2, atol=3e-3),
    ("lessons_sgd", np.float64): dict(rtol=1e-12, atol=1e-13),
    ("nesterov_decay", np.float64): dict(rtol=1e-12, atol=1e-13),
}
LOCKSTEP_OPTIONS = {"lessons_sgd": dict(), "nesterov_decay": dict(momentum=0.9, nesterov=True, weight_decay=5e-4)}


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("options_name", LOCKSTEP_OPTIONS)
def test_fifty_sgd_steps_in_lock_step_with_torch(options_name, dtype_name):
    dtype, options = DTYPES[dtype_name], LOCKSTEP_OPTIONS[options_name]
    # Batches of 16 keep the test quick; every third batch is a short one (padded on the JAX side).
    images, labels = synthetic_dataset(16 * 2 + 5)
    batches = itertools.islice(itertools.cycle(list(fixed_batches(images, labels, 16))), 50)

    torch.manual_seed(0)
    torch_model = TorchTudui().to(TORCH_DTYPES[dtype])
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.01, **options)
    torch_loss_fn = torch.nn.CrossEntropyLoss()
    with jax.enable_x64(dtype == np.float64):
        model = Tudui(param_dtype=dtype)
        params = tudui_params_from_torch(torch_model.state_dict())
        optimizer = torch_sgd(0.01, **options)
        opt_state = optimizer.init(params)
        train_step = make_train_step(model, optimizer)
        torch_losses, jax_losses = [], []
        for batch, real in batches:
            # The lessons' step: the short last batch goes to torch unpadded.
            x = torch.from_numpy(batch["image"][:real].astype(dtype) / dtype(255)).permute(0, 3, 1, 2)
            loss = torch_loss_fn(torch_model(x), torch.from_numpy(batch["label"][:real]).long())
            torch_optimizer.zero_grad()
            loss.backward()
            torch_optimizer.step()
            torch_losses.append(loss.item())
            params, opt_state, metrics = train_step(params, opt_state, jax.tree.map(jnp.asarray, batch))
            jax_losses.append(metrics["loss"])
        tolerance = LOCKSTEP_TOLERANCES[options_name, dtype]
        np.testing.assert_allclose(np.array(jax_losses), torch_losses, **tolerance)
        expected = tudui_params_from_torch(torch_model.state_dict())
        assert jax.tree.leaves(params)[0].dtype == dtype
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tolerance), params, expected)
        assert torch_losses[-1] < torch_losses[0]  # it learned something, so the comparison means something


def test_eval_step_counts_only_real_rows():
    images, labels = synthetic_dataset(64 + 10)
    torch.manual_seed(0)
    torch_model = TorchTudui()
    eval_step = make_eval_step(Tudui())
    params = tudui_params_from_torch(torch_model.state_dict())
    totals = {"loss_sum": 0.0, "correct": 0, "count": 0}
    for batch, _ in fixed_batches(images, labels, 64):
        for key, value in eval_step(params, jax.tree.map(jnp.asarray, batch)).items():
            totals[key] += value
    with torch.no_grad():
        logits = torch_model(torch.from_numpy(images.astype(np.float32) / np.float32(255)).permute(0, 3, 1, 2))
        torch_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels).long(), reduction="sum")
        torch_correct = (logits.argmax(1).numpy() == labels).sum()
    assert totals["count"] == len(labels)
    assert totals["correct"] == torch_correct
    np.testing.assert_allclose(totals["loss_sum"], torch_loss.item(), rtol=1e-5)


def test_mixed_precision_computes_in_bfloat16_and_keeps_float32_state():
    """Tudui(dtype=bfloat16): bfloat16 convolutions and matmuls, float32 weights, gradients, updates and loss."""
    images, labels = synthetic_dataset(32)
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
    params = jax.device_get(Tudui().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    optimizer = torch_sgd(0.05)
    full, mixed = make_train_step(Tudui(), optimizer), make_train_step(Tudui(dtype=jnp.bfloat16), optimizer)
    assert Tudui(dtype=jnp.bfloat16).apply(params, jnp.zeros((1, 32, 32, 3))).dtype == jnp.bfloat16

    _, _, full_metrics = full(jax.device_put(params), optimizer.init(params), batch)
    mixed_params, opt_state, losses = jax.device_put(params), optimizer.init(params), []
    for _ in range(5):
        mixed_params, opt_state, metrics = mixed(mixed_params, opt_state, batch)
        losses.append(float(metrics["loss"]))
    assert metrics["loss"].dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves((mixed_params, opt_state))} == {jnp.dtype(jnp.float32)}
    # bfloat16 keeps 8 bits of mantissa: the first loss agrees with float32's to ~1e-2, and training goes on.
    assert losses[0] == pytest.approx(float(full_metrics["loss"]), rel=2e-2)
    assert losses[-1] < losses[0]
