"""experiments.input_pipeline: epoch orders, padded fixed-shape batches, mid-epoch starts and device prefetch."""

import re

import jax
import numpy as np
import pytest

from experiments.input_pipeline import IGNORE_INDEX, epoch_batches, epoch_permutation, num_batches, prefetch_to_device

NUM_EXAMPLES = 23  # not a multiple of the batch sizes below: the last batch is partial
BATCH_SIZE = 5


def _toy_data(num_examples: int = NUM_EXAMPLES):
    """Images whose pixels all equal their example's index + 1 (never 0, the padding), and labels index % 7."""
    index = np.arange(num_examples)
    images = np.broadcast_to((index + 1).astype(np.uint8)[:, None, None, None], (num_examples, 4, 4, 3)).copy()
    return images, (index % 7).astype(np.int32)


def _example_indices(batch) -> np.ndarray:
    """The example index of each real row of a batch of `_toy_data`, read back from its pixels."""
    real = batch["label"] != IGNORE_INDEX
    return batch["image"][real, 0, 0, 0].astype(int) - 1


def test_num_batches():
    assert [num_batches(n, 5) for n in (0, 1, 4, 5, 6, 10, 11)] == [0, 1, 1, 1, 2, 2, 3]
    assert num_batches(50_000, 64) == 782  # the lessons' CIFAR-10 epoch: 781 full batches and one of 16


@pytest.mark.parametrize("seed", [None, 0, 1], ids=["in_order", "seed0", "seed1"])
def test_every_example_once_in_fixed_shape_batches(seed):
    images, labels = _toy_data()
    batches = list(epoch_batches(images, labels, BATCH_SIZE, seed=seed, epoch=1))
    assert len(batches) == num_batches(NUM_EXAMPLES, BATCH_SIZE) == 5
    for batch in batches:
        assert batch["image"].shape == (BATCH_SIZE, 4, 4, 3) and batch["image"].dtype == np.uint8
        assert batch["label"].shape == (BATCH_SIZE,) and batch["label"].dtype == np.int32
    seen = np.concatenate([_example_indices(batch) for batch in batches])
    assert sorted(seen) == list(range(NUM_EXAMPLES))
    if seed is None:
        assert seen.tolist() == list(range(NUM_EXAMPLES))
    else:
        assert seen.tolist() == epoch_permutation(seed, 1, NUM_EXAMPLES).tolist() != list(range(NUM_EXAMPLES))
    for batch in batches:  # every label belongs to its image
        real = batch["label"] != IGNORE_INDEX
        np.testing.assert_array_equal(batch["label"][real], labels[_example_indices(batch)])
    last = batches[-1]
    padding = BATCH_SIZE * len(batches) - NUM_EXAMPLES
    assert (last["label"][-padding:] == IGNORE_INDEX).all() and (last["label"][:-padding] != IGNORE_INDEX).all()
    assert (last["image"][-padding:] == 0).all()


def test_no_padding_when_the_batches_fill_the_epoch():
    images, labels = _toy_data(10)
    batches = list(epoch_batches(images, labels, 5, seed=0))
    assert len(batches) == 2 and all((batch["label"] != IGNORE_INDEX).all() for batch in batches)


def test_order_is_a_pure_function_of_seed_and_epoch():
    orders = {
        (seed, epoch): epoch_permutation(seed, epoch, NUM_EXAMPLES).tolist() for seed in (0, 1) for epoch in (0, 1, 2)
    }
    for (seed, epoch), order in orders.items():
        assert epoch_permutation(seed, epoch, NUM_EXAMPLES).tolist() == order
        assert sorted(order) == list(range(NUM_EXAMPLES))
    assert len({tuple(order) for order in orders.values()}) == len(orders)  # every (seed, epoch) differs
    # A key gives the order of the seed it was made from, typed or raw.
    assert epoch_permutation(jax.random.key(1), 2, NUM_EXAMPLES).tolist() == orders[1, 2]
    assert epoch_permutation(jax.random.PRNGKey(1), 2, NUM_EXAMPLES).tolist() == orders[1, 2]
    assert epoch_permutation(np.int64(1), 2, NUM_EXAMPLES).tolist() == orders[1, 2]


def test_batches_are_deterministic():
    images, labels = _toy_data()
    first = list(epoch_batches(images, labels, BATCH_SIZE, seed=3, epoch=2))
    again = list(epoch_batches(images, labels, BATCH_SIZE, seed=3, epoch=2))
    next_epoch = list(epoch_batches(images, labels, BATCH_SIZE, seed=3, epoch=3))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert any((a["label"] != b["label"]).any() for a, b in zip(first, next_epoch, strict=True))


@pytest.mark.parametrize("start_batch", [0, 1, 3, 4, 5])
def test_start_batch_gives_the_tail_of_the_epoch(start_batch):
    images, labels = _toy_data()
    full = list(epoch_batches(images, labels, BATCH_SIZE, seed=0, epoch=4))
    resumed = list(epoch_batches(images, labels, BATCH_SIZE, seed=0, epoch=4, start_batch=start_batch))
    assert len(resumed) == len(full) - start_batch
    for a, b in zip(full[start_batch:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_int64_labels_become_int32():
    images, labels = _toy_data()
    batch = next(epoch_batches(images, labels.astype(np.int64), BATCH_SIZE))
    assert batch["label"].dtype == np.int32


def test_empty_dataset_has_no_batches():
    images, labels = _toy_data(0)
    assert list(epoch_batches(images, labels, BATCH_SIZE, seed=0)) == []


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: num_batches(10, 0), ValueError, "`batch_size` must be >= 1; got 0"),
        (lambda: num_batches(-1, 5), ValueError, "`num_examples` must be >= 0; got -1"),
        (lambda: num_batches(10.0, 5), TypeError, "`num_examples` must be an integer; got float"),
        (lambda: epoch_permutation(0, -1, 5), ValueError, "`epoch` must be >= 0; got -1"),
        (lambda: epoch_permutation(0.5, 0, 5), TypeError, "`seed` must be an integer or a JAX PRNG key"),
        (lambda: epoch_permutation(np.zeros(3, np.uint32), 0, 5), TypeError, "`seed` must be an integer or a JAX"),
        (lambda: epoch_batches(*_toy_data(), 5, start_batch=6), ValueError, "`start_batch` must be in [0, 5]"),
        (lambda: epoch_batches(*_toy_data(), 5, start_batch=-1), ValueError, "`start_batch` must be >= 0"),
        (lambda: epoch_batches(_toy_data()[0], _toy_data(22)[1], 5), ValueError, "`labels` must have shape (N,)"),
        (lambda: epoch_batches(_toy_data()[0], np.zeros(23), 5), TypeError, "`labels` must be integer class"),
        (lambda: epoch_batches(*_toy_data(), 0), ValueError, "`batch_size` must be >= 1"),
        (lambda: prefetch_to_device([], size=0), ValueError, "`size` must be >= 1; got 0"),
    ],
    ids=[
        "batch_size_0",
        "negative_examples",
        "float_examples",
        "negative_epoch",
        "float_seed",
        "bad_key",
        "start_past_end",
        "negative_start",
        "labels_shape",
        "float_labels",
        "batch_size_0_batches",
        "size_0",
    ],
)
def test_bad_arguments_raise_at_the_call(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize("size", [1, 2, 10])
def test_prefetch_yields_the_same_batches_on_device(size):
    images, labels = _toy_data()
    host = list(epoch_batches(images, labels, BATCH_SIZE, seed=0))
    device = list(prefetch_to_device(iter(host), size=size))
    assert len(device) == len(host)
    for on_host, on_device in zip(host, device, strict=True):
        assert isinstance(on_device["image"], jax.Array) and isinstance(on_device["label"], jax.Array)
        np.testing.assert_array_equal(on_device["image"], on_host["image"])
        np.testing.assert_array_equal(on_device["label"], on_host["label"])


def test_prefetch_reads_size_batches_ahead():
    taken = []

    def batches():
        for index in range(6):
            taken.append(index)
            yield {"label": np.full(2, index)}

    device = prefetch_to_device(batches(), size=2)
    assert taken == []  # nothing happens before the first batch is asked for
    assert int(next(device)["label"][0]) == 0 and taken == [0, 1]
    assert int(next(device)["label"][0]) == 1 and taken == [0, 1, 2]


def test_prefetch_places_batches_with_the_sharding():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[-1])
    batch = next(prefetch_to_device([{"label": np.arange(4)}], sharding=sharding))
    assert batch["label"].sharding == sharding
