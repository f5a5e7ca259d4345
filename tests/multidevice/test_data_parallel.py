"""Data parallelism on 4 devices gives the single-device numbers: the jitted step, the losses, the checkpoints.

Each test runs the same computation on a one-device mesh and on the 4-device mesh (batch split along `data`,
parameters replicated) and compares. Tolerances (largest difference seen, here):
- float64: 1e-13 allowed (seen: ~3e-17 in the weights after 12 Tudui steps). The same sums, in other orders.
- float32: 1e-6 allowed for the weights (seen: 1.5e-8 after 12 Tudui steps; weights are ~0.1), 1e-5 relative
  for losses and gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import checkpointing, distributed, reporting, train, train_steps
from experiments.input_pipeline import IGNORE_INDEX, epoch_batches, prefetch_to_device
from experiments.models import Tudui
from jaxloss.functional import cross_entropy, nll_loss
from tests.test_train import small_config, synthetic_dataset

DTYPES = {"f32": np.float32, "f64": np.float64}
TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
BATCH = 16  # 4 rows a device


def assert_trees_close(actual, expected, **tolerance):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), **tolerance)


def is_replicated(tree, mesh) -> bool:
    return all(
        leaf.sharding.is_equivalent_to(distributed.replicated(mesh), leaf.ndim) for leaf in jax.tree.leaves(tree)
    )


def train_on(mesh, model, params, images, labels, epochs: int):
    """SGD on `mesh` from host `params`: the losses of every step, and the final params (host copies)."""
    optimizer = train_steps.torch_sgd(0.05)
    train_step = train_steps.make_train_step(model, optimizer)
    params = jax.device_put(params, distributed.replicated(mesh))
    opt_state = jax.device_put(optimizer.init(params), distributed.replicated(mesh))
    losses = []
    for epoch in range(epochs):
        batches = epoch_batches(images, labels, BATCH, seed=0, epoch=epoch)
        for batch in prefetch_to_device(batches, sharding=distributed.batch_sharding(mesh)):
            params, opt_state, metrics = train_step(params, opt_state, batch)
            losses.append(metrics["loss"])
    assert train_step._cache_size() == 1, "the step compiled more than once"
    assert is_replicated(params, mesh) and is_replicated(opt_state, mesh)
    return np.array(losses), jax.device_get(params)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_tudui_trains_on_four_devices_as_on_one(dtype):
    # 52 images in batches of 16: the last batch holds 4 real rows, all on the first device; the other three
    # devices' shards hold only padding (IGNORE_INDEX), so the step's mean must be over the global batch.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (52, 32, 32, 3)).astype(np.uint8)
    labels = rng.integers(0, 10, 52).astype(np.int32)
    last_batch = list(epoch_batches(images, labels, BATCH, seed=0))[-1]["label"]
    assert (last_batch[4:] == IGNORE_INDEX).all() and (last_batch[:4] != IGNORE_INDEX).all()

    with jax.enable_x64(dtype == np.float64):
        model = Tudui(param_dtype=dtype)
        params = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), dtype)))
        one_losses, one_params = train_on(distributed.data_mesh(1), model, params, images, labels, epochs=3)
        four_losses, four_params = train_on(distributed.data_mesh(4), model, params, images, labels, epochs=3)

    assert len(one_losses) == 12 and np.isfinite(four_losses).all()
    np.testing.assert_allclose(four_losses, one_losses, **TOLERANCES[dtype])
    assert_trees_close(four_params, one_params, **TOLERANCES[dtype])


def sharded_loss_inputs(dtype):
    """A linear classifier's inputs where devices 0 and 2 of 4 hold only ignored targets (N, C) and (N, C, d)."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(BATCH, 6)).astype(dtype)
    labels = rng.integers(0, 5, BATCH).astype(np.int32)
    labels[0:4] = labels[8:12] = IGNORE_INDEX  # devices 0 and 2
    spatial_labels = rng.integers(0, 5, (BATCH, 3)).astype(np.int32)
    spatial_labels[0:4] = spatial_labels[8:12] = IGNORE_INDEX
    spatial_labels[5, 1] = IGNORE_INDEX
    class_weight = rng.uniform(0.5, 2.0, 5).astype(dtype)
    weights = {"kernel": rng.normal(size=(6, 5)).astype(dtype), "bias": np.zeros(5, dtype)}
    return features, labels, spatial_labels, class_weight, weights


def loss_heavy(weights, features, labels, spatial_labels, class_weight):
    """Reductions over the global batch: weighted means with ignored targets, label smoothing, a sum, 2-D NLL."""
    logits = features @ weights["kernel"] + weights["bias"]  # (N, C)
    spatial_logits = jnp.stack([logits, 2 * logits, -logits], axis=-1)  # (N, C, d)
    return (
        cross_entropy(logits, labels, weight=class_weight, ignore_index=IGNORE_INDEX)
        + cross_entropy(spatial_logits, spatial_labels, ignore_index=IGNORE_INDEX, label_smoothing=0.1)
        + nll_loss(
            jax.nn.log_softmax(spatial_logits, axis=1), spatial_labels, weight=class_weight, ignore_index=IGNORE_INDEX
        )
        + 0.01 * cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    )


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_loss_reductions_are_over_the_global_batch(dtype):
    with jax.enable_x64(dtype == np.float64):
        features, labels, spatial_labels, class_weight, weights = sharded_loss_inputs(dtype)
        optimizer = optax.sgd(0.1)

        @jax.jit
        def sgd_steps(weights, features, labels, spatial_labels):
            def step(weights, _):
                loss, grads = jax.value_and_grad(loss_heavy)(weights, features, labels, spatial_labels, class_weight)
                updates, _ = optimizer.update(grads, optimizer.init(weights))
                return optax.apply_updates(weights, updates), loss

            return jax.lax.scan(step, weights, length=10)

        results = {}
        for count in (1, 4):
            mesh = distributed.data_mesh(count)
            on_devices = jax.device_put((features, labels, spatial_labels), distributed.batch_sharding(mesh))
            replicated_weights = jax.device_put(weights, distributed.replicated(mesh))
            gradient = jax.jit(jax.grad(loss_heavy))(replicated_weights, *on_devices, class_weight)
            results[count] = jax.device_get((gradient, sgd_steps(replicated_weights, *on_devices)))

    (one_gradient, (one_weights, one_losses)), (four_gradient, (four_weights, four_losses)) = results[1], results[4]
    assert np.isfinite(four_losses).all()
    np.testing.assert_allclose(four_losses, one_losses, **TOLERANCES[dtype])
    assert_trees_close(four_gradient, one_gradient, **TOLERANCES[dtype])
    assert_trees_close(four_weights, one_weights, **TOLERANCES[dtype])


def test_a_batch_that_does_not_divide_by_the_devices_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size 10 must be divisible by the number of devices \(4\)"):
        train.train_and_evaluate(small_config(batch_size=10), tmp_path, dataset=synthetic_dataset())
    assert not (tmp_path / reporting.METRICS_FILE).exists()


def test_a_sharded_checkpoint_restores_onto_other_device_counts(tmp_path):
    four = distributed.data_mesh(4)
    batch_sharded = jax.device_put(np.arange(32, dtype=np.float32).reshape(16, 2), distributed.batch_sharding(four))
    state = {"sharded": batch_sharded, "replicated": jax.device_put(np.ones(3), distributed.replicated(four))}
    checkpointer = checkpointing.Checkpointer(tmp_path, max_to_keep=1)
    checkpointer.save(1, state, {"step": 1})
    checkpointer.close()

    for count in (2, 1):
        mesh = distributed.data_mesh(count)
        like = {
            "sharded": jax.device_put(np.zeros((16, 2), np.float32), distributed.batch_sharding(mesh)),
            "replicated": jax.device_put(np.zeros(3), distributed.replicated(mesh)),
        }
        restored, progress = checkpointing.Checkpointer(tmp_path, max_to_keep=1).restore(1, like)
        assert progress == {"step": 1}
        assert restored["sharded"].sharding == like["sharded"].sharding
        assert [shard.data.shape for shard in restored["sharded"].addressable_shards] == [(16 // count, 2)] * count
        assert_trees_close(restored, jax.device_get(state), rtol=0, atol=0)


def test_a_run_saved_on_four_devices_resumes_on_two(tmp_path, capsys):
    dataset = synthetic_dataset()  # 44 images in batches of 8: 6 steps an epoch, 2 rows a device
    expected = train.train_and_evaluate(small_config(num_devices=1), tmp_path / "one", dataset=dataset)

    workdir = tmp_path / "resumed"
    train.train_and_evaluate(small_config(num_devices=4, num_epochs=2), workdir, dataset=dataset)
    resumed = train.train_and_evaluate(small_config(num_devices=2), workdir, resume=True, dataset=dataset)
    assert "Resuming from the checkpoint of step 12 (epoch 3, batch 0)" in capsys.readouterr().out

    assert resumed.step == expected.step == 18
    two = distributed.data_mesh(2)
    assert is_replicated(resumed.params, two) and is_replicated(resumed.opt_state, two)
    assert_trees_close(jax.device_get(resumed.params), jax.device_get(expected.params), **TOLERANCES[np.float32])
    for got, want in zip(resumed.records, expected.records, strict=True):
        assert got["summed_loss"] == pytest.approx(want["summed_loss"], rel=1e-5)
        assert got["test_accuracy"] == want["test_accuracy"]


def test_an_evaluation_of_many_batches_runs_through_and_counts_as_one_device():
    """100 batches: XLA:CPU deadlocks when ~64 multi-device steps are queued; `evaluate` keeps 8 in flight."""
    dataset = synthetic_dataset(train_size=4, test_size=6400)
    eval_step = train_steps.make_eval_step(Tudui())
    params = jax.device_get(Tudui().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    results = [
        train.evaluate(eval_step, jax.device_put(params, distributed.replicated(mesh)), dataset, 64, mesh)
        for mesh in (distributed.data_mesh(1), distributed.data_mesh(4))
    ]
    assert results[0]["count"] == results[1]["count"] == 6400
    assert results[1]["correct"] == results[0]["correct"]
    assert results[1]["loss_sum"] == pytest.approx(results[0]["loss_sum"], rel=1e-6)
