"""Lesson 3: the loss inside the network, and where its gradients go.

The torch lesson (nn_loss_network.py) runs the CIFAR-10 network "Tudui" on test images, computes
`nn.CrossEntropyLoss()` of its outputs and calls `result_loss.backward()`; in the debugger
`tudui.model1[0].weight.grad` goes from `None` to a tensor. In JAX there is no `.grad` to fill:
`jax.grad(loss_fn)(params, ...)` *returns* the gradients, as a pytree shaped like `params`
(layer -> kernel/bias). This script shows that pytree, each layer's gradient shape and norm, and, where torch
is installed, torch's `.grad` of the same weights on the same images next to it.

Run from the repository root::

    python experiments/lessons/lesson3_network_loss.py                     # CIFAR-10 if available, else digits
    python experiments/lessons/lesson3_network_loss.py --dataset digits    # the offline digits
"""

import argparse
import pathlib
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as a script: make the `experiments` package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments import datasets
from experiments.lessons import _arguments
from experiments.lessons.side_by_side import as_text, show, torch_installed
from experiments.models import Tudui
from experiments.torch_interop import tudui_params_from_torch, tudui_params_to_torch
from jaxloss.functional import cross_entropy

# Module-level, so that every lesson run in a process reuses one compilation (Tudui's random init takes seconds to
# compile on a CPU). torch: tudui = Tudui() creates the weights inside the module. Flax: the module is only the
# computation; init returns the weights as a pytree {'params': {'conv1': {'kernel', 'bias'}, ...}}.
_init_tudui = jax.jit(Tudui().init)


def initial_params(seed: int) -> dict:
    """Tudui's initial weights, `{'params': {'conv1': {'kernel', 'bias'}, ...}}`, torch's default distributions."""
    return _init_tudui(jax.random.key(seed), np.zeros((1, 32, 32, 3), np.float32))


_MODEL = Tudui()


def float_images(images: jax.Array) -> jax.Array:
    """uint8 NHWC images scaled to [0, 1], torchvision's `ToTensor()` (which also makes them NCHW: torch only)."""
    return images.astype(jnp.float32) / 255


def loss_fn(params, images, labels):
    """The lesson's `result_loss = loss(tudui(imgs), targets)` as a function of the weights; also the outputs."""
    outputs = _MODEL.apply(params, float_images(images))
    return cross_entropy(outputs, labels), outputs  # CrossEntropyLoss(); labels -100 (padding) are left out


# `(loss, outputs), grads`, the gradient of the loss with respect to `params` (argument 0), compiled once per batch
# shape (jit) instead of run op by op. Module-level, so that lesson 4 reuses it.
loss_and_grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))

# JAX's and torch's gradient of a layer usually agree to ~1e-6 relative (float32 sums in different orders). Max-pool
# sends each 2x2 window's gradient to its largest input; where two inputs are equal but for rounding (flat image
# regions), the two libraries' rounding can pick different ones, and that layer's gradient then differs by ~1e-3
# (seen on some CIFAR-10 batches). The check allows that, and still catches a wrong layout or a wrong gradient.
GRADIENT_RTOL = 1e-2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (None: `sys.argv`); ``--help`` lists the arguments, a bad value exits with status 2."""
    parser = _arguments.lesson_parser(__doc__, __file__)
    parser.add_argument(
        "--dataset",
        default="auto",
        choices=datasets.DATASET_NAMES,
        help="'auto': CIFAR-10 when available ($JAXLOSS_CIFAR10_DIR or tfds), else digits",
    )
    parser.add_argument(
        "--batch_sizes",
        type=_arguments.positive_int,
        nargs="+",
        default=[1, 64],
        metavar="N",
        help="the batches to run, each > 0: the first N test images, one forward and backward pass each",
    )
    parser.add_argument("--seed", type=_arguments.integer, default=0, help="seed of the network's initial weights")
    return parser.parse_args(argv)


def torch_tudui(params):
    """torch's Tudui (`experiments/torch_tudui.py`) holding the Flax weights `params`."""
    import torch  # only where torch is installed

    from experiments.torch_tudui import TorchTudui

    tudui = TorchTudui()
    tudui.load_state_dict({key: torch.from_numpy(value) for key, value in tudui_params_to_torch(params).items()})
    return tudui


def torch_gradients(params, images: np.ndarray, labels: np.ndarray):
    """torch's side: the lesson's forward, loss and `backward()` on the same weights; returns (loss, grads)."""
    import torch

    tudui = torch_tudui(params)
    loss = torch.nn.CrossEntropyLoss()
    imgs = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(255)  # NHWC uint8 -> ToTensor's NCHW
    targets = torch.from_numpy(np.array(labels)).long()

    # torch keeps each gradient in the parameter's `.grad`, which stays None until a backward() fills it.
    print(f"  torch: tudui.model1[0].weight.grad is None before backward(): {tudui.model1[0].weight.grad is None}")
    result_loss = loss(tudui(imgs), targets)
    result_loss.backward()
    grad = tudui.model1[0].weight.grad
    print(
        f"  torch: after result_loss.backward(), tudui.model1[0].weight.grad is a {type(grad).__name__} "
        f"of shape {tuple(grad.shape)} (OIHW)"
    )
    # The same gradients in Flax's layout (HWIO kernels, (in, out) dense kernels, NHWC flatten order).
    grads = tudui_params_from_torch({name: p.grad for name, p in tudui.named_parameters()})
    return result_loss, grads


def lesson_at(batch_size: int, params, dataset: datasets.ImageDataset) -> None:
    """The forward pass, loss and gradients of the first `batch_size` test images (the lesson's DataLoader)."""
    images, labels = dataset.test_images[:batch_size], dataset.test_labels[:batch_size]
    print(
        f"\n--- batch {batch_size}: images {images.shape} (NHWC; torch's are NCHW), targets {labels.tolist()[:8]}"
        f"{' ...' if batch_size > 8 else ''}"
    )

    # torch: outputs = tudui(imgs); result_loss = loss(outputs, targets); result_loss.backward()
    # JAX: the loss is a function of the parameters; jax.value_and_grad gives its value and its gradient.
    (loss, outputs), grads = loss_and_grads(params, images, labels)
    print(f"  outputs = tudui(imgs): shape {outputs.shape}")
    print(
        "  JAX has no .grad: gradients are return values. jax.value_and_grad(loss_fn, has_aux=True)(params, ...) "
        "returned ((loss, outputs), grads), grads with params' tree structure:"
    )
    print(f"    {jax.tree.structure(grads)}")

    torch_loss, torch_grads = torch_gradients(params, images, labels) if torch_installed() else (None, None)
    show(f"  CrossEntropyLoss of the batch of {batch_size}", loss, torch_loss)
    show_gradients(grads, torch_grads)


def show_gradients(grads, torch_grads=None) -> None:
    """Prints each layer's gradient shape and norm, next to torch's when given (in Flax layout), and checks them.

    Raises:
        AssertionError: if `|grad - torch_grad| > GRADIENT_RTOL * |torch_grad|` for a layer's kernel or bias.
    """
    grads = jax.device_get(grads)  # NumPy arrays: the norms below need no compiling
    for layer, arrays in grads["params"].items():
        for kind, grad in arrays.items():
            line = f"  |grads['params']['{layer}']['{kind}']| {str(grad.shape):>15}: {as_text(np.linalg.norm(grad))}"
            if torch_grads is not None:
                torch_grad = np.asarray(torch_grads["params"][layer][kind])
                difference = np.linalg.norm(grad - torch_grad) / np.linalg.norm(torch_grad)
                assert difference <= GRADIENT_RTOL, f"{layer}.{kind}: JAX and torch gradients differ by {difference}"
                line += f"   (torch: {as_text(np.linalg.norm(torch_grad))}, |difference| / |torch| = {difference:.1e})"
            print(line)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the lesson on the command line's dataset and batch sizes (`parse_args`; ``[]`` for the defaults)."""
    args = parse_args(argv)
    dataset = datasets.load_dataset(args.dataset)
    print(f"Data: {dataset.description}")
    print("The lesson's DataLoader(CIFAR10(train=False, transform=ToTensor())): the test images in order.")

    params = initial_params(args.seed)
    print("params:", jax.tree.map(np.shape, params))
    if torch_installed():
        print("torch runs side by side on the same weights (exported with experiments.torch_interop).")
    for batch_size in args.batch_sizes:
        lesson_at(batch_size, params, dataset)
    print(
        "\ntorch's loop calls backward() image after image without zero_grad(), so .grad keeps adding up; "
        "jax.grad's result is new on every call (lesson 4 shows accumulation as an explicit sum)."
    )


if __name__ == "__main__":
    main()
