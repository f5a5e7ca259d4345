"""Parity of ctc_loss with torch (values and torch's hand-written gradient), plus optax as a sanity check."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from parity import check_raises, runs

import jaxloss.functional as F
from jaxloss.parity._ctc import CASES, concatenate, log_softmax

rng = np.random.default_rng(1)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


# A batch where every row aligns (optax's log(0) = -1e5 would differ from torch's -inf otherwise), for the
# tests below. The padding holds -1 and out-of-range labels.
TARGETS = np.array([[1, 2, 2, 3], [3, 3, -1, -1], [4, 1, 4, 9], [2, -1, -1, -1], [1, 3, 2, 4]])
INPUT_LENGTHS = np.array([12, 9, 5, 12, 8])
TARGET_LENGTHS = np.array([4, 2, 3, 0, 4])
LOG_PROBS = log_softmax(rng.standard_normal((12, 5, 5))).astype(np.float32)


def test_concatenated_equals_padded_under_jit():
    """Traced lengths: the concatenated layout is padded to its total length by a gather; same losses."""
    concatenated = jnp.asarray(concatenate(TARGETS, TARGET_LENGTHS))

    @jax.jit
    def both(log_probs, input_lengths, target_lengths):
        return (
            F.ctc_loss(log_probs, jnp.asarray(TARGETS), input_lengths, target_lengths, reduction="none"),
            F.ctc_loss(log_probs, concatenated, input_lengths, target_lengths, reduction="none"),
        )

    padded, joined = both(LOG_PROBS, jnp.asarray(INPUT_LENGTHS), jnp.asarray(TARGET_LENGTHS))
    np.testing.assert_allclose(joined, padded, rtol=1e-6)


def test_matches_optax_on_normalised_inputs():
    """optax.ctc_loss log-softmaxes its logits: on log-probabilities its values, and its (autodiff) gradient
    with respect to its logits, equal ctc_loss's values and torch-convention gradient."""
    targets = np.where(np.arange(4) < TARGET_LENGTHS[:, None], TARGETS, 0)
    logit_paddings = jnp.asarray(np.arange(12) >= INPUT_LENGTHS[:, None], jnp.float32)
    label_paddings = jnp.asarray(np.arange(4) >= TARGET_LENGTHS[:, None], jnp.float32)

    def ours(log_probs):
        return F.ctc_loss(log_probs, targets, INPUT_LENGTHS.tolist(), TARGET_LENGTHS.tolist(), reduction="none")

    def theirs(log_probs):
        return optax.ctc_loss(jnp.swapaxes(log_probs, 0, 1), logit_paddings, targets, label_paddings)

    cotangent = jnp.asarray(rng.uniform(0.5, 1.5, 5), jnp.float32)

    @jax.jit
    def values_and_grads(log_probs):
        return [jax.value_and_grad(lambda x: jnp.sum(loss(x) * cotangent))(log_probs) for loss in (ours, theirs)]

    (value, grad), (expected, expected_grad) = values_and_grads(jnp.asarray(LOG_PROBS))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-5)


def test_gradient_through_log_softmax_is_the_true_gradient():
    """Composed with log_softmax, torch's convention gives the true gradient with respect to the logits
    (central finite differences of the value, in float64)."""
    logits = rng.standard_normal((6, 2, 4))
    targets, input_lengths, target_lengths = np.array([[1, 2], [3, 3]]), np.array([6, 5]), np.array([2, 2])
    with jax.enable_x64(True):

        @jax.jit
        def loss(z):
            return F.ctc_loss(jax.nn.log_softmax(z), targets, input_lengths, target_lengths, reduction="sum")

        gradient = np.asarray(jax.grad(loss)(jnp.asarray(logits)))
        bumps = 1e-6 * np.eye(logits.size).reshape(-1, *logits.shape)
        differences = (jax.vmap(loss)(logits + bumps) - jax.vmap(loss)(logits - bumps)) / 2e-6
    np.testing.assert_allclose(gradient, np.asarray(differences).reshape(logits.shape), atol=1e-7)


def test_vmap_matches_per_example_calls():
    log_probs = jnp.asarray(np.stack([LOG_PROBS, log_softmax(rng.standard_normal((12, 5, 5)))]), jnp.float32)
    input_lengths = jnp.asarray(np.stack([INPUT_LENGTHS, [3, 12, 12, 7, 9]]))

    def loss(log_probs, input_lengths):
        return F.ctc_loss(log_probs, jnp.asarray(TARGETS), input_lengths, jnp.asarray(TARGET_LENGTHS))

    values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss)))(log_probs, input_lengths)
    for i in range(2):
        value, grad = jax.value_and_grad(loss)(log_probs[i], input_lengths[i])
        np.testing.assert_allclose(values[i], value, rtol=1e-6)
        np.testing.assert_allclose(grads[i], grad, rtol=1e-6, atol=1e-7)


def test_forward_mode_and_second_order_raise():
    def loss(log_probs):
        return F.ctc_loss(log_probs, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS)

    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(loss)(jnp.asarray(LOG_PROBS))
    with pytest.raises(NotImplementedError, match="second-order"):  # raised while tracing: jit compiles nothing
        jax.jit(jax.grad(lambda x: jnp.sum(jax.grad(loss)(x) ** 2)))(jnp.asarray(LOG_PROBS))
    with pytest.raises(NotImplementedError, match="second-order"):
        jax.jit(jax.hessian(loss))(jnp.asarray(LOG_PROBS))


def call(log_probs=LOG_PROBS, targets=TARGETS, input_lengths=INPUT_LENGTHS, target_lengths=TARGET_LENGTHS, **options):
    """A zero-argument call of ctc_loss on these (jax) arrays, for `check_raises` and `jax.jit`."""
    arrays = [jnp.asarray(a) for a in (log_probs, targets, input_lengths, target_lengths)]
    return lambda: F.ctc_loss(*arrays, **options)


def test_bad_options_and_shapes():
    check_raises(call(reduction="avg"), ValueError, "`reduction` must be one of")
    check_raises(call(blank=5), ValueError, r"`blank` must be a class index in \[0, 5\)")
    check_raises(call(blank=-1), ValueError, "`blank` must be a class index")
    check_raises(call(blank=1.0), TypeError, "`blank` must be an int")
    check_raises(call(zero_infinity=1), TypeError, "`zero_infinity` must be a bool")
    check_raises(call(log_probs=np.ones((12, 5, 5), np.int32)), TypeError, "`log_probs` must be a floating")
    check_raises(call(log_probs=LOG_PROBS[0, 0]), ValueError, r"`log_probs` must have shape \(T, N, C\)")
    check_raises(call(log_probs=LOG_PROBS[None]), ValueError, r"`log_probs` must have shape \(T, N, C\)")
    check_raises(call(log_probs=LOG_PROBS[:0]), ValueError, "`log_probs` must not be empty")
    check_raises(call(targets=TARGETS[None]), ValueError, "`targets` must be padded")
    check_raises(call(targets=TARGETS[0, 0]), ValueError, "`targets` must be padded")
    check_raises(call(targets=TARGETS.astype(np.complex64)), TypeError, "`targets` must be an array of class")
    check_raises(call(targets=TARGETS[:4]), ValueError, "padded `targets` must have one row per batch element")
    check_raises(call(input_lengths=INPUT_LENGTHS[:4]), ValueError, "`input_lengths` must hold one length per")
    check_raises(call(target_lengths=TARGET_LENGTHS[None]), ValueError, "`target_lengths` must hold one length")
    check_raises(call(input_lengths=INPUT_LENGTHS * 1.0), TypeError, "`input_lengths` must be an integer array")
    check_raises(call(target_lengths=TARGET_LENGTHS > 0), TypeError, "`target_lengths` must be an integer array")


BAD_VALUES = {
    "negative target length": (dict(target_lengths=[4, -1, 3, 0, 4]), "`target_lengths` must be non-negative"),
    "target length > S": (dict(target_lengths=[5, 2, 3, 0, 4]), "`target_lengths` must be at most the padded"),
    "concatenation too long": (dict(targets=np.arange(14) % 4 + 1), r"must hold sum\(target_lengths\) labels"),
    "concatenation too short": (dict(targets=np.arange(12) % 4 + 1), r"must hold sum\(target_lengths\) labels"),
    "unbatched targets longer than target length": (
        dict(log_probs=LOG_PROBS[:, 0], targets=TARGETS[4], input_lengths=8, target_lengths=3),
        r"must hold sum\(target_lengths\) labels",
    ),
    "negative input length": (dict(input_lengths=[12, -1, 5, 12, 8]), "`input_lengths` must be non-negative"),
    "input length > T": (dict(input_lengths=[13, 9, 5, 12, 8]), "`input_lengths` must be at most the number"),
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_bad_values_raise_eagerly_and_give_nan_under_jit(name):
    """Checks on the data, which torch raises for: eager ValueError, NaN under jit."""
    changes, message = BAD_VALUES[name]
    arguments = (
        dict(log_probs=LOG_PROBS, targets=TARGETS, input_lengths=INPUT_LENGTHS, target_lengths=TARGET_LENGTHS) | changes
    )
    with pytest.raises(RuntimeError):  # torch refuses these too
        torch.nn.functional.ctc_loss(*(torch.as_tensor(np.asarray(value)) for value in arguments.values()))
    with pytest.raises(ValueError, match=message):
        call(**arguments)()
    assert np.isnan(jax.jit(F.ctc_loss)(*(jnp.asarray(value) for value in arguments.values())))


def test_bad_values_raise_under_eager_grad():
    with pytest.raises(ValueError, match="`input_lengths` must be at most the number of frames T = 12"):
        jax.grad(lambda x: call(log_probs=x, input_lengths=[13, 9, 5, 12, 8])())(jnp.asarray(LOG_PROBS))


@pytest.mark.parametrize("label", [5, -1])
def test_labels_out_of_range_raise_eagerly_and_give_nan_under_jit(label):
    """torch reads out of bounds for these (a meaningless value, or a crash): jaxloss checks them."""
    targets = TARGETS.copy()
    targets[1, 1] = label
    with pytest.raises(ValueError, match=r"`targets` must hold class indices in \[0, 5\)"):
        call(targets=targets)()
    losses = np.asarray(
        jax.jit(F.ctc_loss, static_argnames="reduction")(
            LOG_PROBS, targets, INPUT_LENGTHS, TARGET_LENGTHS, reduction="none"
        )
    )
    assert np.isnan(losses[1]) and not np.isnan(np.delete(losses, 1)).any()
