"""Lesson 2: a survey of torch's losses, each formula evaluated by hand next to the library, and TensorFlow's forms.

The PyTorch survey lesson runs the regression losses on ``sample = ones(2, 2)`` against ``target = [[0, 1], [2, 3]]``
and then the classification losses. Here every loss is written out from its formula in `jax.numpy` (no library
call), printed next to `jaxloss.nn`'s result and torch's, and the two TensorFlow losses people port from,
``tf.nn.sigmoid_cross_entropy_with_logits`` and ``tf.nn.softmax_cross_entropy_with_logits``, are shown to be
``BCEWithLogitsLoss`` and ``CrossEntropyLoss`` under another name.

Run from the repository root::

    python experiments/lessons/lesson2_survey.py
"""

import importlib.util
import pathlib
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments.lessons import _arguments, side_by_side
from experiments.lessons.side_by_side import show
from jaxloss import nn

# The classification examples. One sample with three class scores, as in the lesson; the lesson does not fix the
# class, so this lesson takes class 1 (the highest score, 2.0).
LOGITS = jnp.array([[0.8, 2.0, 1.2]])
LABEL = jnp.array([1])
# Multi-label examples (BCE, BCEWithLogits, MultiLabelSoftMargin): two samples, three independent yes/no labels.
# The first row is the lesson's prediction; the second has negative logits, so that the |x| in TensorFlow's stable
# formula matters, and a "yes" on a negative score (a large loss) next to "no"s.
MULTI_LOGITS = jnp.array([[0.8, 2.0, 1.2], [-1.0, 0.5, -3.0]])
MULTI_LABELS = jnp.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
# The 2-D NLL case (N, C, d): one sample, three classes (axis 1), two positions (e.g. two pixels) with a class each.
LOGITS_2D = jnp.array([[[0.8, 0.5], [2.0, -1.0], [1.2, 0.3]]])
LABELS_2D = jnp.array([[1, 0]])


def _torch():
    """torch when it is installed, else None: the lesson then prints the JAX side alone."""
    if not side_by_side.torch_installed():
        return None
    import torch  # imported lazily: the lesson runs without torch

    return torch


def _text(array) -> str:
    """An array as a short list, e.g. [[0.8, 2.0, 1.2]] (not float32's 0.800000011920929)."""
    return str(np.round(np.asarray(array, dtype=np.float64), 4).tolist())


def torch_loss(torch, name: str, input, target, **kwargs):
    """torch.nn.<name>(**kwargs)(input, target) on copies of the JAX arrays, or None without torch."""
    if torch is None:
        return None
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.integer):
        target = target.astype(np.int64)  # torch wants class indices as int64 ("LongTensor")
    return getattr(torch.nn, name)(**kwargs)(torch.tensor(np.asarray(input)), torch.tensor(target))


def compare(name: str, formula: str, by_hand, library, torch_value, lesson_printed: str | None = None) -> None:
    """Prints a loss's formula, its value by hand and the library's (and torch's); checks they agree."""
    np.testing.assert_allclose(
        by_hand,
        library,
        rtol=side_by_side.RTOL,
        atol=side_by_side.ATOL,
        err_msg=f"{name}: the formula and jaxloss disagree",
    )
    print(f"\n{name} = {formula}")
    show("  by hand (jax.numpy)", by_hand, torch_value)
    show("  jaxloss.nn", library, torch_value, lesson_printed=lesson_printed)


def regression(torch) -> None:
    """The lesson's first part: L1, SmoothL1 and MSE of ones(2, 2) against [[0, 1], [2, 3]]."""
    print("sample = ones(2, 2), target = [[0, 1], [2, 3]]: differences d = sample - target = [[1, 0], [-1, -2]]")
    sample, target = jnp.ones((2, 2)), jnp.array([[0.0, 1.0], [2.0, 3.0]])
    d = sample - target
    compare(
        "L1Loss",
        "mean(|d|)",
        jnp.mean(jnp.abs(d)),
        nn.L1Loss()(sample, target),
        torch_loss(torch, "L1Loss", sample, target),
        lesson_printed="1.0",
    )
    # SmoothL1 with beta = 1: quadratic near 0, linear beyond.
    smooth = jnp.where(jnp.abs(d) < 1.0, 0.5 * d**2, jnp.abs(d) - 0.5)
    compare(
        "SmoothL1Loss",
        "mean(0.5 d^2 if |d| < 1 else |d| - 0.5)",
        jnp.mean(smooth),
        nn.SmoothL1Loss()(sample, target),
        torch_loss(torch, "SmoothL1Loss", sample, target),
        lesson_printed="0.625",
    )
    compare(
        "MSELoss",
        "mean(d^2)",
        jnp.mean(d**2),
        nn.MSELoss()(sample, target),
        torch_loss(torch, "MSELoss", sample, target),
        lesson_printed="1.5",
    )


def classification(torch) -> None:
    """CrossEntropy, NLL (1-D and 2-D), BCE, BCEWithLogits and MultiLabelSoftMargin with their formulas."""
    x, c = LOGITS, LABEL
    print(f"\nprediction x = {_text(x)} (class scores), target class {c.tolist()}")
    compare(
        "CrossEntropyLoss",
        "-x[class] + log(sum_j exp(x[j]))",
        -x[0, c[0]] + jnp.log(jnp.sum(jnp.exp(x[0]))),
        nn.CrossEntropyLoss()(x, c),
        torch_loss(torch, "CrossEntropyLoss", x, c),
    )
    # NLLLoss takes log-probabilities: log_softmax(x) written out is x - log(sum(exp(x))).
    log_probs = x - jnp.log(jnp.sum(jnp.exp(x), axis=1, keepdims=True))
    compare(
        "NLLLoss on log_softmax(x)",
        "-log_probs[class]  (= CrossEntropyLoss on x)",
        -log_probs[0, c[0]],
        nn.NLLLoss()(log_probs, c),
        torch_loss(torch, "NLLLoss", log_probs, c),
    )
    # The 2-D case: input (N, C, d), target (N, d); the class axis is 1 and the mean runs over every position.
    log_probs_2d = LOGITS_2D - jnp.log(jnp.sum(jnp.exp(LOGITS_2D), axis=1, keepdims=True))
    picked = jnp.take_along_axis(log_probs_2d, LABELS_2D[:, None, :], axis=1)  # log_probs[n, target[n, k], k]
    print(f"\n2-D NLL: log_softmax over axis 1 of an (N, C, d) = {LOGITS_2D.shape} input, target {LABELS_2D.tolist()}")
    compare(
        "NLLLoss (N, C, d)",
        "-mean over n, k of log_probs[n, target[n, k], k]",
        -jnp.mean(picked),
        nn.NLLLoss()(log_probs_2d, LABELS_2D),
        torch_loss(torch, "NLLLoss", log_probs_2d, LABELS_2D),
    )

    z = MULTI_LABELS
    print(f"\nmulti-label logits x = {_text(MULTI_LOGITS)}, labels z = {_text(z)}")
    p = 1.0 / (1.0 + jnp.exp(-MULTI_LOGITS))  # sigmoid written out: BCELoss takes probabilities
    bce = -(z * jnp.log(p) + (1 - z) * jnp.log(1 - p))
    compare(
        "BCELoss on p = sigmoid(x)",
        "mean(-(z log p + (1 - z) log(1 - p)))",
        jnp.mean(bce),
        nn.BCELoss()(p, z),
        torch_loss(torch, "BCELoss", p, z),
    )
    compare(
        "BCEWithLogitsLoss on x",
        "the same with p = 1 / (1 + exp(-x)) inside (stable for large |x|)",
        jnp.mean(bce),
        nn.BCEWithLogitsLoss()(MULTI_LOGITS, z),
        torch_loss(torch, "BCEWithLogitsLoss", MULTI_LOGITS, z),
    )
    log_sig, log_sig_neg = jnp.log(p), jnp.log(1.0 / (1.0 + jnp.exp(MULTI_LOGITS)))  # log sigma(x), log sigma(-x)
    # The mean over C, then over N: with no weights, the same number as BCEWithLogitsLoss's mean over all elements.
    per_sample = -jnp.sum(z * log_sig + (1 - z) * log_sig_neg, axis=1) / z.shape[1]
    compare(
        "MultiLabelSoftMarginLoss",
        "mean over n of -(1/C) sum_c (z log sigma(x) + (1 - z) log sigma(-x))  (no weights: BCEWithLogitsLoss's mean)",
        jnp.mean(per_sample),
        nn.MultiLabelSoftMarginLoss()(MULTI_LOGITS, z),
        torch_loss(torch, "MultiLabelSoftMarginLoss", MULTI_LOGITS, z),
    )


def tensorflow_forms(torch) -> None:
    """TensorFlow's two cross-entropies with logits, by TF's formula in JAX, against jaxloss (and TF if installed)."""
    x, z = MULTI_LOGITS, MULTI_LABELS
    print(
        "\nTensorFlow: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x) = "
        "max(x, 0) - x * z + log(1 + exp(-|x|))  per element"
    )
    tf_sigmoid = jnp.maximum(x, 0.0) - x * z + jnp.log(1.0 + jnp.exp(-jnp.abs(x)))
    library = nn.BCEWithLogitsLoss(reduction="none")(x, z)
    np.testing.assert_allclose(tf_sigmoid, library, rtol=side_by_side.RTOL, atol=side_by_side.ATOL)
    show("  TF's formula in JAX", tf_sigmoid)
    show(
        "  jaxloss BCEWithLogitsLoss(reduction='none')",
        library,
        torch_loss(torch, "BCEWithLogitsLoss", x, z, reduction="none"),
    )

    one_hot = jnp.array([[0.0, 1.0, 0.0]])  # class 1 of the CrossEntropy example as TF's one-hot labels
    print(
        "\nTensorFlow: tf.nn.softmax_cross_entropy_with_logits(labels, logits) = "
        "-sum(labels * log_softmax(logits)) per sample"
    )
    tf_softmax = -jnp.sum(one_hot * (LOGITS - jnp.log(jnp.sum(jnp.exp(LOGITS), axis=1, keepdims=True))), axis=1)
    # torch (and jaxloss) CrossEntropyLoss also takes class probabilities as the target: the one-hot row itself.
    library = nn.CrossEntropyLoss(reduction="none")(LOGITS, one_hot)
    np.testing.assert_allclose(tf_softmax, library, rtol=side_by_side.RTOL, atol=side_by_side.ATOL)
    show("  TF's formula in JAX", tf_softmax)
    show(
        "  jaxloss CrossEntropyLoss(reduction='none') with the one-hot target",
        library,
        torch_loss(torch, "CrossEntropyLoss", LOGITS, one_hot, reduction="none"),
    )

    if importlib.util.find_spec("tensorflow") is None:
        print(
            "\nTensorFlow is not installed: skipping the numerical comparison with tf.nn (the formulas above are "
            "the ones TensorFlow documents)"
        )
        return
    import tensorflow as tf  # imported lazily: an optional comparison

    tf_values = {
        "sigmoid_cross_entropy_with_logits": (
            tf_sigmoid,
            tf.nn.sigmoid_cross_entropy_with_logits(labels=np.asarray(z), logits=np.asarray(x)).numpy(),
        ),
        "softmax_cross_entropy_with_logits": (
            tf_softmax,
            tf.nn.softmax_cross_entropy_with_logits(labels=np.asarray(one_hot), logits=np.asarray(LOGITS)).numpy(),
        ),
    }
    print(f"\nTensorFlow {tf.__version__} itself:")
    for name, (by_hand, tf_value) in tf_values.items():
        np.testing.assert_allclose(
            by_hand,
            tf_value,
            rtol=side_by_side.RTOL,
            atol=side_by_side.ATOL,
            err_msg=f"tf.nn.{name} and its formula disagree",
        )
        show(f"  tf.nn.{name} (agrees with the formula)", tf_value)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the survey and prints its numbers (next to torch's where torch is installed).

    Args:
      argv: the command-line arguments (none are taken), None for `sys.argv`; pass ``[]`` from Python.
    """
    _arguments.lesson_parser(__doc__, __file__).parse_args(argv)  # none taken; --help prints the docstring
    torch = _torch()
    print(
        f"Lesson 2: the loss survey (JAX {jax.__version__}"
        f"{', torch ' + torch.__version__ if torch is not None else ', torch not installed'})\n"
    )
    regression(torch)
    classification(torch)
    tensorflow_forms(torch)


if __name__ == "__main__":
    main()
