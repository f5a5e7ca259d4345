"""The seed lessons' losses and their gradients, computed by jaxloss.

Run: ``python experiments/demo.py``. PyTorch's "loss functions and backpropagation" lessons build these
losses with `torch.nn` and call ``loss.backward()``; here the same classes come from `jaxloss.nn` and
`jax.value_and_grad` returns each gradient instead of filling ``.grad``.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import nn


def rounded(array: jax.Array) -> str:
    text = np.array2string(np.asarray(array), precision=4, suppress_small=True, separator=", ")
    return " ".join(text.split())  # one line


def show(title: str, loss_fn, prediction: jax.Array, target: jax.Array) -> None:
    """Prints the loss of `prediction` against `target` and its gradient with respect to `prediction`."""
    loss, grad = jax.value_and_grad(loss_fn)(prediction, target)
    print(f"{title:<38} loss = {float(loss):.4f}   d loss / d prediction = {rounded(grad)}")


def main() -> None:
    print(f"jaxloss demo on JAX {jax.__version__} ({jax.default_backend()})\n")

    inputs, targets = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 2.0, 5.0])
    print("Lesson 1: inputs [1, 2, 3], targets [1, 2, 5]")
    show("L1Loss()  (torch prints 0.6667)", nn.L1Loss(), inputs, targets)
    show("L1Loss(reduction='sum')  (2.0)", nn.L1Loss(reduction="sum"), inputs, targets)
    show("MSELoss()  (1.3333)", nn.MSELoss(), inputs, targets)
    print("L1Loss(reduction='none'):", rounded(nn.L1Loss(reduction="none")(inputs, targets)))

    sample, target = jnp.ones((2, 2)), jnp.array([[0.0, 1.0], [2.0, 3.0]])
    print("\nLesson 2: sample ones(2, 2), target [[0, 1], [2, 3]]")
    show("L1Loss()  (1.0)", nn.L1Loss(), sample, target)
    show("SmoothL1Loss()  (0.625)", nn.SmoothL1Loss(), sample, target)
    show("MSELoss()  (1.5)", nn.MSELoss(), sample, target)

    logits, label = jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1])
    print("\nLesson 3: logits [[0.1, 0.2, 0.3]], class 1")
    show("CrossEntropyLoss()  (1.1019)", nn.CrossEntropyLoss(), logits, label)
    print("  the gradient is softmax(logits) - one_hot(class):", rounded(jax.nn.softmax(logits) - jax.nn.one_hot(label, 3)))


if __name__ == "__main__":
    main()
