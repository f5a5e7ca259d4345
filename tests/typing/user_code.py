"""jaxloss as its users see it, for the type checker: `mypy` checks this file (pyproject's ``[tool.mypy]``).

Every call here is a correct use, and `assert_type` pins the type a user gets back, so an annotation that
regresses to `Any` (a decorator that erases signatures, say) fails the check. The functions are never called:
importing this module does nothing. `misuse.py` holds the mistakes the type checker must report.
"""

import dataclasses
from typing import assert_type

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

import jaxloss
import jaxloss.functional as F
from jaxloss import nn


def functional_losses(logits: jax.Array, labels: jax.Array, x: jax.Array, y: jax.Array, host: np.ndarray) -> None:
    # Array-likes: JAX and NumPy arrays, NumPy and Python scalars.
    assert_type(F.cross_entropy(logits, labels), jax.Array)
    assert_type(F.cross_entropy(logits, labels, weight=None, reduction="sum", label_smoothing=0.1, axis=-1), jax.Array)
    assert_type(F.nll_loss(jax.nn.log_softmax(logits), labels, ignore_index=0, reduction="none"), jax.Array)
    assert_type(F.mse_loss(host, 0.5), jax.Array)
    assert_type(F.l1_loss(x, y, "none", weight=host), jax.Array)
    assert_type(F.smooth_l1_loss(x, y, beta=0.5), jax.Array)
    assert_type(F.huber_loss(x, y, delta=2.0), jax.Array)
    assert_type(F.binary_cross_entropy(jax.nn.sigmoid(x), jax.nn.sigmoid(y)), jax.Array)
    assert_type(F.binary_cross_entropy_with_logits(x, y, pos_weight=jnp.ones(3)), jax.Array)
    assert_type(F.soft_margin_loss(x, jnp.sign(y)), jax.Array)
    assert_type(F.multilabel_soft_margin_loss(x, y, weight=np.ones(3)), jax.Array)
    assert_type(F.kl_div(x, y, reduction="batchmean", log_target=True), jax.Array)
    assert_type(F.poisson_nll_loss(x, y, log_input=False, full=True, eps=1e-6), jax.Array)
    assert_type(F.gaussian_nll_loss(x, y, 1.0, full=True), jax.Array)
    assert_type(F.multilabel_margin_loss(x, labels), jax.Array)
    assert_type(F.multi_margin_loss(x, labels, p=2, margin=0.5), jax.Array)
    assert_type(F.margin_ranking_loss(x, y, jnp.sign(y), margin=0.1), jax.Array)
    assert_type(F.hinge_embedding_loss(x, jnp.sign(y)), jax.Array)
    assert_type(F.cosine_embedding_loss(x, y, labels, reduction="mean"), jax.Array)
    assert_type(F.pairwise_distance(x, y, p=1.0, keepdim=True), jax.Array)
    assert_type(F.triplet_margin_loss(x, y, -y, margin=0.5, swap=True), jax.Array)
    assert_type(F.triplet_margin_with_distance_loss(x, y, -y), jax.Array)
    assert_type(F.triplet_margin_with_distance_loss(x, y, -y, distance_function=F.pairwise_distance), jax.Array)
    assert_type(
        F.triplet_margin_with_distance_loss(x, y, -y, distance_function=lambda a, b: jnp.sum(jnp.abs(a - b), -1)),
        jax.Array,
    )
    assert_type(F.ctc_loss(logits, labels, [4, 3], (2, 1), blank=0, zero_infinity=True), jax.Array)
    assert_type(F.ctc_loss(logits, labels, jnp.array([4, 3]), jnp.array([2, 1])), jax.Array)
    options = nn.LinearCrossEntropyOptions(batch_chunk_size=64, acc_policy="accurate")
    assert_type(F.linear_cross_entropy(x, y, labels, linear_bias=None, options=options), jax.Array)


def transformations(logits: jax.Array, labels: jax.Array) -> None:
    error, loss = jaxloss.checkify(F.cross_entropy)(logits, labels, label_smoothing=0.1)
    assert_type(error, checkify.Error)
    assert_type(loss, jax.Array)
    # jax.jit's result is typed as returning Any (jax's choice), so only the call is checked here.
    jax.jit(jaxloss.checkify(F.nll_loss))(logits, labels)


def loss_classes(logits: jax.Array, labels: jax.Array, x: jax.Array, y: jax.Array) -> None:
    cross_entropy = nn.CrossEntropyLoss(jnp.ones(3), label_smoothing=0.1, axis=-1)
    assert_type(cross_entropy(logits, labels), jax.Array)
    summed = dataclasses.replace(cross_entropy, reduction="sum")
    assert_type(summed, nn.CrossEntropyLoss)
    assert_type(summed.weight, jax.Array | None)
    losses: list[nn.Loss] = [nn.L1Loss(), nn.MSELoss("sum"), nn.KLDivLoss("batchmean"), nn.GaussianNLLLoss(eps=1e-3)]
    assert losses
    assert_type(nn.BCEWithLogitsLoss(pos_weight=jnp.ones(3))(x, y), jax.Array)
    assert_type(nn.GaussianNLLLoss(full=True)(x, y, jnp.ones_like(x)), jax.Array)
    assert_type(nn.MarginRankingLoss(0.5)(x, y, jnp.sign(y)), jax.Array)
    assert_type(nn.TripletMarginLoss(p=1.0)(x, y, -y), jax.Array)
    assert_type(nn.TripletMarginWithDistanceLoss(distance_function=F.pairwise_distance)(x, y, -y), jax.Array)
    assert_type(nn.CTCLoss(zero_infinity=True)(logits, labels, [4, 3], [2, 1]), jax.Array)
    linear = nn.LinearCrossEntropyLoss(3, 4, bias=True, dtype=jnp.bfloat16, key=jax.random.key(0))
    assert_type(linear(x, labels), jax.Array)
    assert_type(linear.linear_weight, jax.Array | None)
    # Instances are pytrees, passed to jitted functions as arguments.
    jax.jit(lambda loss, a, b: loss(a, b))(cross_entropy, logits, labels)
