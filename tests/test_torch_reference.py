"""The torch reference trainer (`experiments/torch_reference.py`) stops at a non-finite loss as the JAX one does.

Its training in step with the JAX run is tested in tests/test_train.py."""

import math
import re

import pytest
import torch
from test_train import small_config, synthetic_dataset

from experiments import input_pipeline, reporting, train

torch_reference = pytest.importorskip("experiments.torch_reference")

# Importing the command line (experiments.cli) loads the default --config file, which ml_collections 1.1 does
# with importlib's deprecated `load_module`: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:the load_module\\(\\) method is deprecated:DeprecationWarning")


def test_a_nan_loss_stops_the_run_at_its_step(tmp_path):
    dataset = synthetic_dataset()
    config = small_config(learning_rate=3.0)  # the loss overflows within the first epoch
    # The expected step: the same model, SGD and batches, trained here until the loss is not finite.
    init_key, data_key = train.seed_keys(config.seed)
    model = torch_reference.initial_model(init_key)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    batches = input_pipeline.epoch_batches(
        dataset.train_images, dataset.train_labels, config.batch_size, seed=data_key, epoch=1
    )
    nan_step = None
    for step, batch in enumerate(batches, start=1):
        images, labels = torch_reference._torch_batch(batch)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not math.isfinite(loss.item()):
            nan_step = step
            break
    assert nan_step is not None, "the learning rate should make a loss of epoch 1 non-finite"

    message = f"the training loss is {loss.item()} at step {nan_step} (epoch 1, batch {nan_step} of 6): stopping"
    with pytest.raises(FloatingPointError, match=re.escape(message)):
        torch_reference.train_and_evaluate(config, tmp_path, dataset=dataset)
    assert reporting.read_metrics(tmp_path) == []  # stopped before epoch 1's record
    assert not (tmp_path / train.PLOT_FILE).exists()


def test_an_unsupported_setting_is_a_run_error(tmp_path):
    from experiments import errors

    with pytest.raises(errors.RunError, match="set --config.compute_dtype=float32"):
        torch_reference.train_and_evaluate(small_config(compute_dtype="bfloat16"), tmp_path, dataset=None)
