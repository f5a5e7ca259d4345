"""Lesson 4: the optimizer. torch's `optim.zero_grad(); loss.backward(); optim.step()` as one functional step.

The torch lesson (nn_optim.py) trains Tudui on CIFAR-10's test set with `torch.optim.SGD(lr=0.01)` and prints
each epoch's `running_loss`, the sum of the batches' mean losses. Here `optax.sgd` (through
`experiments.train_steps.torch_sgd`, torch's SGD with torch's argument names) does the same at lr 0.01 and 0.02, next
to torch's SGD from the same weights on the same batches. Then gradient accumulation: torch's `backward()` called
k times without `zero_grad()` adds the k gradients into `.grad`; in JAX that is (a) a sum of gradient pytrees and
(b) `optax.MultiSteps`, which applies the optimizer to their *mean* every k steps.

The lesson ran 20 epochs at batch 1 (10,000 steps an epoch on CIFAR-10); the default here is batch 64 and
3 epochs, affordable on a 2-core CPU. Run from the repository root::

    python experiments/lessons/lesson4_optimizer.py                        # CIFAR-10 if available, else digits
    python experiments/lessons/lesson4_optimizer.py --batch_size 1 --epochs 20 --learning_rates 0.01  # the original
"""

import argparse
import functools
import pathlib
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments import datasets
from experiments.input_pipeline import IGNORE_INDEX, epoch_batches, num_batches
from experiments.lessons import _arguments
from experiments.lessons.lesson3_network_loss import (
    GRADIENT_RTOL,
    initial_params,
    loss_and_grads,
    show_gradients,
    torch_tudui,
)
from experiments.lessons.side_by_side import as_text, show, torch_installed
from experiments.models import Tudui
from experiments.torch_interop import tudui_params_from_torch
from experiments.train_steps import make_train_step, torch_sgd

# Two float32 trainings drift apart by rounding, step after step (summation order in the convolutions, and the
# max-pool near-ties of lesson 3): on CIFAR-10 at batch 64 the summed losses differ by ~1e-7 relative after one
# epoch and ~1e-5 after three; at batch 1 (on the digits) by ~3e-4 after 400 steps. So the epochs' sums are
# printed side by side, and the check that both take the same step is on the first steps' losses: step 2's loss
# is computed with the weights after step 1, so a wrong update (e.g. a missing zero_grad()) shows there.
CHECKED_STEPS = 2
# Weights (~0.1 in size) after one small step (~1e-5): each rounded to float32, a few of its epsilon apart.
WEIGHT_ROUNDING = 4 * float(np.finfo(np.float32).eps)


def argument_parser() -> _arguments.LessonArgumentParser:
    """The lesson's command line; `main` also calls its `error` for an --accumulate that the data cannot fill."""
    parser = _arguments.lesson_parser(__doc__, __file__)
    parser.add_argument(
        "--dataset",
        default="auto",
        choices=datasets.DATASET_NAMES,
        help="'auto': CIFAR-10 when available ($JAXLOSS_CIFAR10_DIR or tfds), else digits",
    )
    positive_int = _arguments.positive_int
    parser.add_argument("--batch_size", type=positive_int, default=64, help="images per step, > 0; the lesson used 1")
    parser.add_argument("--epochs", type=positive_int, default=3, help="passes over the data, > 0; the lesson ran 20")
    parser.add_argument(
        "--learning_rates",
        type=_arguments.positive_float,
        nargs="+",
        default=[0.01, 0.02],
        metavar="LR",
        help="SGD's learning rates, each finite and > 0: one training from the same weights each; the first one "
        "also steps the gradient accumulation",
    )
    parser.add_argument(
        "--max_batches",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on the first N > 0 batches only; %(default)s: all",
    )
    parser.add_argument(
        "--accumulate",
        type=positive_int,
        default=3,
        metavar="K",
        help="k > 0, the batches whose gradients are summed: at most the test split's number of batches",
    )
    parser.add_argument("--seed", type=_arguments.integer, default=0, help="seed of the network's initial weights")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (None: `sys.argv`); ``--help`` lists the arguments, a bad value exits with status 2."""
    return argument_parser().parse_args(argv)


def torch_batch(batch):
    """A batch's real rows as the lesson's DataLoader + ToTensor give them: float32 NCHW in [0, 1], int64 labels."""
    import torch

    real = batch["label"] != IGNORE_INDEX  # epoch_batches pads a short last batch; torch's is just short
    images = torch.from_numpy(batch["image"][real]).permute(0, 3, 1, 2).float().div(255)
    return images, torch.from_numpy(batch["label"][real]).long()


def torch_grads(tudui):
    """The `.grad` of every parameter of torch's Tudui, in Flax's layout."""
    return tudui_params_from_torch({name: p.grad for name, p in tudui.named_parameters()})


def train(images, labels, params, learning_rate: float, args) -> None:
    """The lesson's loop at `learning_rate`, printing each epoch's summed loss (and torch's, from the same weights)."""
    optimizer = torch_sgd(learning_rate)  # torch: optim = torch.optim.SGD(tudui.parameters(), lr=learning_rate)
    # make_train_step: zero_grad + forward + backward + step as one jitted pure function. It donates `params` and
    # `opt_state` (reuses their memory), so it gets a fresh copy of the initial weights.
    train_step = make_train_step(Tudui(), optimizer)
    params = jax.device_put(params)
    opt_state = optimizer.init(params)
    if torch_installed():
        import torch

        tudui = torch_tudui(params)
        optim, loss = torch.optim.SGD(tudui.parameters(), lr=learning_rate), torch.nn.CrossEntropyLoss()
    print(f"\n--- SGD, lr {learning_rate}: running_loss, the sum of the batches' mean losses, per epoch")
    for epoch in range(args.epochs):
        running_loss, torch_running_loss = 0.0, 0.0 if torch_installed() else None
        first_losses, torch_first_losses = [], []  # the first steps' losses, compared exactly below
        for batch in epoch_batches(images, labels, args.batch_size):  # the lesson's DataLoader: no shuffling
            # One call replaces zero_grad()/backward()/step(): its gradients are a fresh return value, so there is
            # no .grad left over from the last batch to clear.
            params, opt_state, metrics = train_step(params, opt_state, batch)
            running_loss += float(metrics["loss"])
            first_losses += [float(metrics["loss"])] if len(first_losses) < CHECKED_STEPS else []
            if torch_installed():
                imgs, targets = torch_batch(batch)
                result_loss = loss(tudui(imgs), targets)
                optim.zero_grad()  # .grad += each backward(): without this, this batch's grads add to the last one's
                result_loss.backward()
                optim.step()
                torch_running_loss += result_loss.item()
                torch_first_losses += [result_loss.item()] if len(torch_first_losses) < CHECKED_STEPS else []
        if epoch == 0:
            show(
                f"  epoch 0: the first {len(first_losses)} steps' losses",
                first_losses,
                torch_first_losses if torch_installed() else None,
            )
        if torch_running_loss is not None:
            difference = abs(running_loss - torch_running_loss) / abs(torch_running_loss)
            print(
                f"  epoch {epoch}: running_loss: {as_text(running_loss)}   (torch: {as_text(torch_running_loss)}, "
                f"relative difference {difference:.1e})"
            )
        else:
            show(f"  epoch {epoch}: running_loss", running_loss)


def accumulation(images, labels, params, learning_rate: float, k: int, batch_size: int) -> None:
    """Gradients accumulated over k batches: a sum of pytrees and `optax.MultiSteps`, against torch's `.grad`."""
    batches = list(epoch_batches(images[: k * batch_size], labels[: k * batch_size], batch_size))
    print(f"\n--- gradient accumulation over k = {k} batches of {batch_size}")

    # (a) torch: k backward() calls with no zero_grad() in between leave g_1 + ... + g_k in .grad.
    #     JAX: k gradient pytrees (lesson 3's jax.value_and_grad), added leaf by leaf.
    grads = [loss_and_grads(params, batch["image"], batch["label"])[1] for batch in batches]
    summed = functools.reduce(lambda a, b: jax.tree.map(jnp.add, a, b), grads)
    torch_summed = None
    if torch_installed():
        import torch

        tudui, loss = torch_tudui(params), torch.nn.CrossEntropyLoss()
        for batch in batches:
            imgs, targets = torch_batch(batch)
            loss(tudui(imgs), targets).backward()  # no zero_grad(): adds to .grad
        torch_summed = torch_grads(tudui)
        tudui.zero_grad()  # what optim.zero_grad() does too (set_to_none=True): .grad is None again
        print(f"torch: after zero_grad(), tudui.model1[0].weight.grad is None: {tudui.model1[0].weight.grad is None}")
    print(f"(a) jax.tree.map(jnp.add, ...) of the {k} gradient pytrees vs torch's .grad after {k} backward() calls:")
    show_gradients(summed, torch_summed)

    # (b) optax.MultiSteps(opt, every_k_schedule=k) keeps the gradients of k calls and then applies `opt` to their
    #     MEAN, (g_1 + ... + g_k) / k; the first k - 1 updates are zeros. torch's equivalent is the usual recipe
    #     `(loss / k).backward()` k times, then one optim.step() at the same lr (or the plain sums and lr / k).
    multi_steps = optax.MultiSteps(torch_sgd(learning_rate), every_k_schedule=k)
    train_step = make_train_step(Tudui(), multi_steps)  # the same train step, the optimizer wrapped
    new_params, opt_state = jax.device_put(params), multi_steps.init(params)
    for step, batch in enumerate(batches, start=1):
        new_params, opt_state, _ = train_step(new_params, opt_state, batch)
        if step < k:
            unchanged = all(
                np.array_equal(a, b)
                for a, b in zip(jax.tree.leaves(jax.device_get(new_params)), jax.tree.leaves(params), strict=True)
            )
            print(f"(b) MultiSteps step {step} of {k}: params unchanged, the gradient stored: {unchanged}")
            assert unchanged, "MultiSteps changed the weights before the k-th step"
    new_params = jax.device_get(new_params)
    by_formula = jax.tree.map(lambda p, g: p - learning_rate / k * np.asarray(g), params, jax.device_get(summed))
    torch_params = None
    if torch_installed():
        tudui = torch_tudui(params)
        optim = torch.optim.SGD(tudui.parameters(), lr=learning_rate)
        optim.zero_grad()
        for batch in batches:
            imgs, targets = torch_batch(batch)
            (loss(tudui(imgs), targets) / k).backward()  # .grad ends as (g_1 + ... + g_k) / k
        optim.step()
        torch_params = tudui_params_from_torch(tudui.state_dict())
    print(
        f"(b) MultiSteps step {k} of {k}: params - lr * mean(g_1, ..., g_{k}) = params - {learning_rate:g} / {k} * "
        "sum, checked against the formula"
        + (f" and torch's SGD(lr={learning_rate:g}).step() after {k} x (loss / {k}).backward()" if torch_params else "")
    )
    leaves = map(jax.tree.leaves, (params, by_formula, torch_params or by_formula))
    for (path, ours), before, formula, theirs in zip(jax.tree.leaves_with_path(new_params), *leaves, strict=True):
        name = jax.tree_util.keystr(path)
        differences = [weight_difference(ours, np.asarray(reference), before) for reference in (formula, theirs)]
        line = f"  |change of params{name}|: {np.linalg.norm(ours - before):.4e}   (formula: {differences[0]:.1e}"
        torch_part = f", torch: {differences[1]:.1e}" if torch_params else ""
        print(f"{line}{torch_part} relative difference)")


def weight_difference(ours, reference, before) -> float:
    """`|ours - reference| / |reference - before|`: how far two updated weights are apart, relative to the update.

    Raises:
        AssertionError: beyond what the max-pool near-ties (`GRADIENT_RTOL`, see lesson 3) and the float32
            rounding of the weights themselves allow.
    """
    change = np.linalg.norm(reference - before)
    allowed = GRADIENT_RTOL * change + WEIGHT_ROUNDING * np.linalg.norm(before)
    assert np.linalg.norm(ours - reference) <= allowed, "MultiSteps' weights disagree"
    return float(np.linalg.norm(ours - reference) / change)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the lesson with the command line's settings (`parse_args`; ``[]`` for the defaults)."""
    parser = argument_parser()
    args = parser.parse_args(argv)
    dataset = datasets.load_dataset(args.dataset)
    print(f"Data: {dataset.description}")
    # The accumulation takes its k batches from the start of the test split; with fewer, MultiSteps never steps.
    available = num_batches(len(dataset.test_labels), args.batch_size)
    if args.accumulate > available:
        parser.error(
            f"argument --accumulate: expected at most {available}, the batches of {args.batch_size} in the "
            f"{len(dataset.test_labels)} test images; got {args.accumulate}"
        )
    # The lesson trains on CIFAR10(train=False): the test split, in order.
    count = len(dataset.test_labels) if args.max_batches is None else args.max_batches * args.batch_size
    images, labels = dataset.test_images[:count], dataset.test_labels[:count]
    print(f"Training on the first {len(labels)} test images, batch {args.batch_size}, {args.epochs} epochs.")
    if torch_installed():
        print("torch's SGD runs side by side from the same weights on the same batches.")
    print(
        "torch's step: optim.zero_grad(); result_loss.backward(); optim.step(). backward() ADDS into each .grad,\n"
        "so zero_grad() first clears the last batch's gradients. JAX's step, params, opt_state = train_step(params,\n"
        "opt_state, batch), takes its gradients as a fresh return value of jax.value_and_grad: nothing to clear."
    )
    params = jax.device_get(initial_params(args.seed))  # on the host: each run below gets its own device copy
    for learning_rate in args.learning_rates:
        train(images, labels, params, learning_rate, args)
    accumulation(
        dataset.test_images, dataset.test_labels, params, args.learning_rates[0], args.accumulate, args.batch_size
    )


if __name__ == "__main__":
    main()
