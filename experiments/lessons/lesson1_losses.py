"""Lesson 1: losses on toy tensors, and the gradient that replaces ``loss.backward()``.

The PyTorch lesson builds ``L1Loss``, ``MSELoss`` and ``CrossEntropyLoss`` on three-number tensors and prints them.
Here the same classes come from `jaxloss.nn` (the import is the only change), the lesson's numbers are printed next
to torch's, and the lesson shows why integer tensors are rejected. Last, where torch's ``loss.backward()`` fills
``inputs.grad``, `jax.value_and_grad` returns the loss and the gradient together.

Run from the repository root::

    python experiments/lessons/lesson1_losses.py
"""

import pathlib
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments.lessons import _arguments, side_by_side
from experiments.lessons.side_by_side import show
from jaxloss import nn

# What the torch lesson printed for the first pair of tensors (and tensor(1.1019) for the cross-entropy).
LESSON_PRINTED = {
    ("L1Loss", "mean"): "tensor(0.6667)",
    ("L1Loss", "sum"): "tensor(2.)",
    ("MSELoss", "mean"): "tensor(1.3333)",
}


def _torch():
    """torch when it is installed, else None: the lesson then prints the JAX side alone."""
    if not side_by_side.torch_installed():
        return None
    import torch  # imported lazily: the lesson runs without torch

    return torch


def regression_losses(torch, inputs: list[float], targets: list[float], *, check_lesson: bool) -> None:
    """L1Loss and MSELoss with each reduction on one pair of tensors, next to torch's."""
    print(f"\ninputs {inputs} vs targets {targets}, reshaped to (1, 1, 1, 3) as in the lesson")
    # torch: torch.reshape(torch.tensor(inputs, dtype=torch.float32), (1, 1, 1, 3)) -> jnp: the same, with jnp.
    x = jnp.reshape(jnp.array(inputs, dtype=jnp.float32), (1, 1, 1, 3))
    y = jnp.reshape(jnp.array(targets, dtype=jnp.float32), (1, 1, 1, 3))
    for name in ("L1Loss", "MSELoss"):
        for reduction in ("mean", "sum", "none"):
            # torch: nn.L1Loss(reduction="sum")(x, y) -> jaxloss.nn.L1Loss(reduction="sum")(x, y), same arguments.
            value = getattr(nn, name)(reduction=reduction)(x, y)
            torch_value = None
            if torch is not None:
                torch_x = torch.reshape(torch.tensor(inputs, dtype=torch.float32), (1, 1, 1, 3))
                torch_y = torch.reshape(torch.tensor(targets, dtype=torch.float32), (1, 1, 1, 3))
                torch_value = getattr(torch.nn, name)(reduction=reduction)(torch_x, torch_y)
            printed = LESSON_PRINTED.get((name, reduction)) if check_lesson else None
            show(f"  {name}(reduction={reduction!r})", value, torch_value, lesson_printed=printed)


def cross_entropy(torch) -> None:
    """CrossEntropyLoss on the lesson's three logits with class 1."""
    print("\nCrossEntropyLoss on logits [0.1, 0.2, 0.3] reshaped to (1, 3), target class [1]")
    # torch: x = torch.reshape(torch.tensor([0.1, 0.2, 0.3]), (1, 3)); y = torch.tensor([1])
    logits, label = jnp.reshape(jnp.array([0.1, 0.2, 0.3]), (1, 3)), jnp.array([1])
    torch_value = None
    if torch is not None:
        torch_value = torch.nn.CrossEntropyLoss()(
            torch.reshape(torch.tensor([0.1, 0.2, 0.3]), (1, 3)), torch.tensor([1])
        )
    show("  CrossEntropyLoss()", nn.CrossEntropyLoss()(logits, label), torch_value, lesson_printed="tensor(1.1019)")
    # By hand: -x[class] + log(sum(exp(x))) = -0.2 + log(e^0.1 + e^0.2 + e^0.3).
    show("  by hand: -x[1] + log(sum(exp(x)))", -logits[0, 1] + jnp.log(jnp.sum(jnp.exp(logits))), torch_value)


def integer_tensors(torch) -> None:
    """Why the lesson writes dtype=torch.float32: losses that average need floating-point inputs."""
    print("\nInteger tensors are rejected: the lesson's tensor([1, 2, 3]) without dtype=float32")
    if torch is not None:
        try:
            torch.nn.L1Loss()(
                torch.reshape(torch.tensor([1, 2, 3]), (1, 1, 1, 3)),
                torch.reshape(torch.tensor([1, 2, 5]), (1, 1, 1, 3)),
            )
            print("  torch accepted the integer tensors")
        except RuntimeError as error:  # torch cannot take the mean of int64 values
            print(f"  torch:   {type(error).__name__}: {error}")
    else:
        print("  torch:   (not installed; the lesson's torch raises RuntimeError from mean() on int64 tensors)")
    try:
        nn.L1Loss()(jnp.reshape(jnp.array([1, 2, 3]), (1, 1, 1, 3)), jnp.reshape(jnp.array([1, 2, 5]), (1, 1, 1, 3)))
        print("  jaxloss accepted the integer arrays")
    except TypeError as error:  # jaxloss checks the dtype up front and names the argument
        print(f"  jaxloss: {type(error).__name__}: {error}")
    print("  the fix in both: jnp.array([1, 2, 3], dtype=jnp.float32), as torch.tensor(..., dtype=torch.float32)")


def gradients(torch) -> None:
    """loss.backward() and inputs.grad -> jax.value_and_grad, which returns the gradient instead of storing it."""
    print("\nGradients: torch's loss.backward() fills inputs.grad; jax.value_and_grad(loss_fn) returns it")
    cases = [
        ("L1Loss()", nn.L1Loss(), "L1Loss", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0]),
        ("MSELoss()", nn.MSELoss(), "MSELoss", [1.0, 2.0, 3.0], [1.0, 2.0, 5.0]),
        ("CrossEntropyLoss()", nn.CrossEntropyLoss(), "CrossEntropyLoss", [[0.1, 0.2, 0.3]], [1]),
    ]
    for label, loss_fn, torch_name, inputs, targets in cases:
        target = jnp.array(targets)
        # value_and_grad differentiates with respect to the first argument: the prediction, as inputs.grad would.
        loss, grad = jax.value_and_grad(loss_fn)(jnp.array(inputs), target)
        torch_grad = None
        if torch is not None:
            torch_inputs = torch.tensor(inputs, requires_grad=True)  # torch: mark the tensor to differentiate
            getattr(torch.nn, torch_name)()(torch_inputs, torch.tensor(targets)).backward()  # fills .grad
            torch_grad = torch_inputs.grad
        show(f"  {label} loss {float(loss):.4f}, d loss / d inputs", grad, torch_grad)
    logits, label = jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1])
    show(
        "  cross-entropy's gradient by hand: softmax(x) - one_hot(class)",
        jnp.exp(logits) / jnp.sum(jnp.exp(logits)) - jax.nn.one_hot(label, 3),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the lesson and prints its numbers (next to torch's where torch is installed).

    Args:
      argv: the command-line arguments (none are taken), None for `sys.argv`; pass ``[]`` from Python.
    """
    _arguments.lesson_parser(__doc__, __file__).parse_args(argv)  # none taken; --help prints the docstring
    torch = _torch()
    print(
        f"Lesson 1: losses on toy tensors (JAX {jax.__version__}"
        f"{', torch ' + torch.__version__ if torch is not None else ', torch not installed'})"
    )
    regression_losses(torch, [1.0, 2.0, 3.0], [1.0, 2.0, 5.0], check_lesson=True)
    regression_losses(torch, [1.0, 2.0, 3.0], [1.0, 4.0, 9.0], check_lesson=False)
    cross_entropy(torch)
    integer_tensors(torch)
    gradients(torch)


if __name__ == "__main__":
    main()
