"""Jit-compiled training and evaluation steps with torch's SGD and cross-entropy.

The JAX form of the lessons' loop ``optim.zero_grad(); loss = loss_fn(model(x), y); loss.backward();
optim.step()`` is one pure function, ``train_step(params, opt_state, batch) -> (params, opt_state, metrics)``:
`jax.value_and_grad` returns fresh gradients on every call (there is nothing to zero), and the optax update
replaces `optim.step()`.
"""

import functools
import numbers
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from experiments import xla_cpu
from experiments.input_pipeline import IGNORE_INDEX
from jaxloss.functional import cross_entropy

Batch = dict[str, jax.Array]
"""`{'image': (B, H, W, C) uint8 or float images, 'label': (B,) int class indices, IGNORE_INDEX for padding}`."""


def torch_sgd(
    learning_rate,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """`torch.optim.SGD` as an optax transformation, with torch's argument names and defaults.

    torch's update with gradient `g` for parameter `p` (dampening 0)::

        g = -g if maximize;  g = g + weight_decay * p;  buf = momentum * buf + g (buf = g on the first step)
        g = g + momentum * buf if nesterov else buf;  p = p - learning_rate * g

    which is `optax.add_decayed_weights` followed by `optax.sgd` (its `trace` starts from zero, so the first
    step's buffer is `g`, as torch's).

    Args:
        learning_rate: a number or an optax schedule (the JAX form of torch's LR schedulers).
        momentum: momentum factor, >= 0.
        dampening: must be 0: optax's momentum has no dampening.
        weight_decay: L2 penalty added to the gradient, >= 0 (torch's coupled decay, not AdamW's).
        nesterov: Nesterov momentum; needs `momentum > 0`.
        maximize: ascend instead of descend.

    Returns:
        An `optax.GradientTransformation`; its `update` needs `params` when `weight_decay` is not 0.

    Raises:
        ValueError: for a negative learning rate, momentum or weight decay, a non-zero dampening, or Nesterov
            without momentum (as torch does).
    """
    if isinstance(learning_rate, numbers.Real) and learning_rate < 0:
        raise ValueError(f"torch_sgd: learning_rate must be >= 0, got {learning_rate}")
    if momentum < 0:
        raise ValueError(f"torch_sgd: momentum must be >= 0, got {momentum}")
    if weight_decay < 0:
        raise ValueError(f"torch_sgd: weight_decay must be >= 0, got {weight_decay}")
    if dampening != 0:
        raise ValueError(f"torch_sgd: dampening must be 0 (optax's momentum has none), got {dampening}")
    if nesterov and momentum <= 0:
        raise ValueError("torch_sgd: nesterov=True requires momentum > 0")
    transforms = []
    if maximize:
        transforms.append(optax.scale(-1.0))
    if weight_decay:
        transforms.append(optax.add_decayed_weights(weight_decay))
    transforms.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
    return optax.chain(*transforms)


def _float_images(images: jax.Array, params) -> jax.Array:
    """Integer images scaled to [0, 1] in the parameters' dtype (torchvision's ToTensor); floats unchanged."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return images.astype(dtype) / 255
    return images


def _logits(model: nn.Module, params, batch: Batch) -> jax.Array:
    """The model's logits, in float32 at least: a model computing in bfloat16 (mixed precision) has its loss and
    the loss's sums over the batch computed in float32, as torch's autocast does for `cross_entropy`."""
    logits = model.apply(params, _float_images(batch["image"], params))
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation) -> Callable[..., Any]:
    """A jit-compiled SGD step of `model` on the mean cross-entropy of a batch.

    Rows labelled `IGNORE_INDEX` (the padding of a short last batch) are left out of the mean, as torch's
    `CrossEntropyLoss` would give for the short batch itself.

    On one CPU device the step's convolutions run on Eigen, over every core (`experiments.xla_cpu`).

    Data parallelism needs no other step: called with a batch split over a mesh's devices and replicated
    `params`/`opt_state` (`experiments.distributed`), the jitted step runs partitioned, and its loss and gradients
    are those of the whole global batch. Mixed precision is the model's: e.g. `Tudui(dtype=jnp.bfloat16)`
    computes in bfloat16 with float32 parameters, gradients and loss.

    Args:
        model: a Flax module mapping images `(B, H, W, C)` to logits `(B, num_classes)`.
        optimizer: an optax transformation, e.g. `torch_sgd(0.01)`.

    Returns:
        `train_step(params, opt_state, batch) -> (params, opt_state, {'loss': scalar})`. `params` and
        `opt_state` are donated: their buffers are reused for the results, so do not use them after the call.
    """

    def loss_fn(params, batch: Batch) -> jax.Array:
        return cross_entropy(_logits(model, params, batch), batch["label"], ignore_index=IGNORE_INDEX)

    @functools.partial(jax.jit, donate_argnums=(0, 1), compiler_options=xla_cpu.compiler_options())
    def train_step(params, opt_state, batch: Batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss}

    return train_step


def make_eval_step(model: nn.Module) -> Callable[..., Any]:
    """A jit-compiled evaluation of `model` on a batch: summed loss and correct predictions of its real rows.

    Args:
        model: a Flax module mapping images `(B, H, W, C)` to logits `(B, num_classes)`.

    Returns:
        `eval_step(params, batch) -> {'loss_sum', 'correct', 'count'}`: the summed cross-entropy, the number of
        rows whose arg-max logit is the label, and the number of rows not labelled `IGNORE_INDEX`. Sum them over
        batches; accuracy is `correct / count`, mean loss `loss_sum / count`.
    """

    @functools.partial(jax.jit, compiler_options=xla_cpu.compiler_options())
    def eval_step(params, batch: Batch) -> dict[str, jax.Array]:
        logits = _logits(model, params, batch)
        labels = batch["label"]
        real = labels != IGNORE_INDEX
        losses = cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")  # 0 where ignored
        correct = (jnp.argmax(logits, axis=-1) == labels) & real
        return {"loss_sum": losses.sum(), "correct": correct.sum(), "count": real.sum()}

    return eval_step
