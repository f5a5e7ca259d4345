"""Lesson 5: gradients by hand, and how torch's autograd calls become `jax.grad`, `jax.vjp` and `jax.jacrev`.

The torch lesson differentiates an MSE loss with `torch.autograd.grad(loss, [w])` and with `loss.backward()`
followed by `w.grad`, marks tensors with `requires_grad_()`, keeps the graph with `retain_graph=True`, and
differentiates softmax, whose Jacobian is ``dp_i/da_j = p_i (delta_ij - p_j)``. In JAX a gradient is a function
of a function: `jax.grad(f, argnums=...)` says which arguments to differentiate, `jax.lax.stop_gradient` is
`detach()`, the function that `jax.vjp` returns can be called as often as you like (no graph to retain), and
`jax.jacrev` gives the whole Jacobian. Every gradient is also worked out by hand, and, where torch is
installed, computed by torch on the same numbers.

Run from the repository root::

    python experiments/lessons/lesson5_gradients.py
"""

import pathlib
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as a script: make `jaxloss` and `experiments` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import jaxloss.functional as F
from experiments.lessons import _arguments
from experiments.lessons.side_by_side import show, torch_installed


def _torch():
    """The torch module where it is installed (the lesson then runs the torch original too), else None."""
    if not torch_installed():
        return None
    import torch

    return torch


def _first_line(error: Exception) -> str:
    """The error's type and the first sentence of its message, for one printed line."""
    sentence = str(error).strip().splitlines()[0].split(" (")[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {sentence}"


def mse_by_hand(torch) -> None:
    """The lesson's MSE gradient, then d/dx of MSE with and without the mean, by hand, by JAX and by torch."""
    print("1. MSE and its derivative")
    # torch: x = torch.ones(1); w = torch.full([1], 2.); w.requires_grad_()
    #        mse = F.mse_loss(torch.ones(1), x * w); torch.autograd.grad(mse, [w])
    x, w = jnp.ones(1), jnp.full(1, 2.0)

    def mse_of_w(w):
        return F.mse_loss(jnp.ones(1), x * w)

    # By hand: mse = (1 - x w)^2, so d mse / dw = 2 (x w - 1) x = 2 (2 - 1) = 2.
    mse, grad_w = jax.value_and_grad(mse_of_w)(w)
    np.testing.assert_allclose(grad_w, 2 * (x * w - 1) * x)
    torch_mse = torch_grad_w = None
    if torch is not None:
        torch_w = torch.full([1], 2.0).requires_grad_()
        torch_mse = torch.nn.functional.mse_loss(torch.ones(1), torch.ones(1) * torch_w)
        (torch_grad_w,) = torch.autograd.grad(torch_mse, [torch_w])
    show("  mse = (1 - x*w)^2 at x = 1, w = 2", mse, torch_mse, lesson_printed="tensor(1.)")
    show("  d mse / dw = 2 (x*w - 1) x", grad_w, torch_grad_w, lesson_printed="(tensor([2.]),)")

    # Now a vector: prediction x against target y, n = 3 elements.
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 4.0, 9.0])
    for reduction, by_hand, formula in (
        ("mean", 2 * (x - y) / x.size, "2 (x - y) / n"),
        ("sum", 2 * (x - y), "2 (x - y)"),
    ):
        grad_x = jax.grad(F.mse_loss)(x, y, reduction)  # jax.grad differentiates the first argument by default
        np.testing.assert_allclose(grad_x, by_hand, rtol=1e-6)
        torch_grad_x = None
        if torch is not None:
            torch_x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
            torch.nn.functional.mse_loss(torch_x, torch.tensor([1.0, 4.0, 9.0]), reduction=reduction).backward()
            torch_grad_x = torch_x.grad
        show(f"  d/dx {reduction}((x - y)^2) = {formula}", grad_x, torch_grad_x)


def grad_versus_backward(torch) -> None:
    """`autograd.grad(loss, [w])` and `loss.backward(); w.grad` are both `jax.grad(f, argnums=...)`."""
    print("2. autograd.grad(loss, [w]) and loss.backward() -> jax.grad(f, argnums=...)")
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 4.0, 9.0])

    def loss(w, b):
        return F.mse_loss(w * x + b, y)

    w, b = jnp.array(2.0), jnp.array(0.5)
    residual = w * x + b - y  # by hand: d/dw mean(r^2) = mean(2 r x), d/db mean(r^2) = mean(2 r)
    by_hand = (jnp.mean(2 * residual * x), jnp.mean(2 * residual))
    grad_w = jax.grad(loss, argnums=0)(w, b)  # torch.autograd.grad(loss, [w]) -> (dw,)
    grad_w_and_b = jax.grad(loss, argnums=(0, 1))(w, b)  # loss.backward(); w.grad, b.grad
    np.testing.assert_allclose(grad_w, by_hand[0], rtol=1e-6)
    np.testing.assert_allclose(grad_w_and_b, by_hand, rtol=1e-6)
    torch_grad_w = torch_grads = None
    if torch is not None:
        torch_w = torch.tensor(2.0, requires_grad=True)
        torch_b = torch.tensor(0.5, requires_grad=True)
        torch_x, torch_y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 4.0, 9.0])
        torch_loss = torch.nn.functional.mse_loss(torch_w * torch_x + torch_b, torch_y)
        (torch_grad_w,) = torch.autograd.grad(torch_loss, [torch_w], retain_graph=True)
        assert torch_w.grad is None  # autograd.grad returns the gradient and leaves .grad alone
        torch_loss.backward()  # backward() fills .grad of every leaf that requires grad
        torch_grads = np.array([torch_w.grad, torch_b.grad])
    show("  jax.grad(loss, argnums=0)(w, b)         ~ autograd.grad(loss, [w])", grad_w, torch_grad_w)
    show("  jax.grad(loss, argnums=(0, 1))(w, b)    ~ backward(); w.grad, b.grad", grad_w_and_b, torch_grads)


def what_to_differentiate(torch) -> None:
    """`requires_grad_()` -> the arguments (or pytree leaves) you differentiate; `detach()` -> `stop_gradient`."""
    print("3. requires_grad_() -> what you differentiate; detach() -> jax.lax.stop_gradient")
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 4.0, 9.0])

    def loss(params):
        return F.mse_loss(params["w"] * x + params["b"], y)

    params = {"w": jnp.array(2.0), "b": jnp.array(0.5)}
    # Train w only (torch: b.requires_grad_(False)): differentiate a pytree that holds only the leaves you want.
    trainable, frozen = {"w": params["w"]}, {"b": params["b"]}
    grads = jax.grad(lambda trainable: loss({**trainable, **frozen}))(trainable)
    assert grads.keys() == {"w"}

    # torch: loss = F.mse_loss(w * x + b.detach(), y): no gradient flows into b (b.grad stays None).
    def loss_detached(params):
        return F.mse_loss(params["w"] * x + jax.lax.stop_gradient(params["b"]), y)

    detached = jax.grad(loss_detached)(params)
    np.testing.assert_allclose(detached["w"], grads["w"])
    assert detached["b"] == 0  # JAX returns a zero gradient where torch leaves .grad as None
    torch_w_grad = torch_detached_w_grad = None
    if torch is not None:
        torch_w, torch_b = torch.tensor(2.0, requires_grad=True), torch.tensor(0.5)  # b does not require grad
        torch_x, torch_y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 4.0, 9.0])
        torch.nn.functional.mse_loss(torch_w * torch_x + torch_b, torch_y).backward()
        torch_w_grad = torch_w.grad
        torch_w, torch_b = torch.tensor(2.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
        torch.nn.functional.mse_loss(torch_w * torch_x + torch_b.detach(), torch_y).backward()
        torch_detached_w_grad = torch_w.grad
        assert torch_b.grad is None
    show("  d loss / dw, only w differentiated", grads["w"], torch_w_grad)
    show("  d loss / dw with b detached (stop_gradient)", detached["w"], torch_detached_w_grad)
    show("  d loss / db with b detached, where torch leaves b.grad None", detached["b"])

    # The lesson's `w = torch.full([1], 2)` is an int64 tensor on today's torch: neither library differentiates
    # integers. torch refuses requires_grad_(); jax.grad refuses the integer argument.
    try:
        jax.grad(lambda w: jnp.sum(w * 1.0))(jnp.full(1, 2))
    except TypeError as error:
        print(f"  jax.grad of an integer argument -> {_first_line(error)}")
    if torch is not None:
        try:
            torch.full([1], 2).requires_grad_()
        except RuntimeError as error:
            print(f"  torch: torch.full([1], 2).requires_grad_() -> {_first_line(error)}")
        try:  # and autograd.grad of a tensor that was never marked
            torch.autograd.grad(torch.nn.functional.mse_loss(torch.ones(1), torch.full([1], 2.0)), [torch.ones(1)])
        except RuntimeError as error:
            print(f"  torch: autograd.grad without requires_grad_() -> {_first_line(error)}")


def reuse_without_retain_graph(torch) -> None:
    """`retain_graph=True` -> the function returned by `jax.vjp` (or `jax.grad`) can be called again and again."""
    print("4. retain_graph=True -> call the vjp function again (or jax.grad again)")
    a = jnp.array([2.0, 1.0])
    p, vjp_fn = jax.vjp(jax.nn.softmax, a)  # p = softmax(a), vjp_fn(v) = v^T (dp/da)
    (row_0,) = vjp_fn(jnp.array([1.0, 0.0]))  # d p_0 / da: one call...
    (row_1,) = vjp_fn(jnp.array([0.0, 1.0]))  # ...and another: nothing was freed, nothing to retain
    np.testing.assert_allclose(row_0, jax.grad(lambda a: jax.nn.softmax(a)[0])(a), rtol=1e-6)  # or call grad again
    try:  # torch's p.backward() on a vector; in JAX: grad needs a scalar, use vjp or jacrev
        jax.grad(jax.nn.softmax)(a)
    except TypeError as error:
        print(f"  jax.grad(softmax) of a vector -> {_first_line(error)}")
    torch_p = torch_row_0 = torch_row_1 = None
    if torch is not None:
        torch_a = torch.tensor([2.0, 1.0], requires_grad=True)
        torch_p = torch.nn.functional.softmax(torch_a, dim=0)
        (torch_row_0,) = torch.autograd.grad(torch_p[0], [torch_a], retain_graph=True)  # keep the graph...
        (torch_row_1,) = torch.autograd.grad(torch_p[1], [torch_a])  # ...for this call
        try:
            torch.autograd.grad(torch_p[1], [torch_a])  # the graph is gone now
        except RuntimeError as error:
            print(f"  torch: a third autograd.grad without retain_graph -> {_first_line(error)}")
    show("  p = softmax([2, 1])", p, torch_p)
    show("  vjp_fn([1, 0]) = d p_0 / da", row_0, torch_row_0)
    show("  vjp_fn([0, 1]) = d p_1 / da", row_1, torch_row_1)


def softmax_jacobian(torch) -> None:
    """softmax's Jacobian by `jax.jacrev` against ``p_i (delta_ij - p_j)``, for 2 and 3 classes."""
    print("5. the softmax Jacobian dp_i/da_j = p_i (delta_ij - p_j)")
    for logits in ([2.0, 1.0], [2.0, 1.0, 0.1]):
        a = jnp.array(logits)
        p = jax.nn.softmax(a)
        jacobian = jax.jacrev(jax.nn.softmax)(a)  # row i: the gradient of p_i
        by_hand = jnp.diag(p) - jnp.outer(p, p)  # p_i delta_ij - p_i p_j
        np.testing.assert_allclose(jacobian, by_hand, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(jax.jacfwd(jax.nn.softmax)(a), jacobian, rtol=1e-5, atol=1e-7)
        off_diagonal = ~np.eye(a.size, dtype=bool)
        assert (jnp.diag(jacobian) > 0).all() and (jacobian[off_diagonal] < 0).all()
        np.testing.assert_allclose(jacobian.sum(axis=0), 0, atol=1e-6)  # the p_i sum to 1, whatever a is
        torch_jacobian = None
        if torch is not None:
            torch_a = torch.tensor(logits, requires_grad=True)
            torch_p = torch.nn.functional.softmax(torch_a, dim=0)
            rows = [torch.autograd.grad(torch_p[i], [torch_a], retain_graph=True)[0] for i in range(a.size)]
            torch_jacobian = torch.stack(rows)  # as the lesson did it: one autograd.grad per output
            np.testing.assert_allclose(
                torch.autograd.functional.jacobian(lambda t: torch.softmax(t, dim=0), torch_a),
                torch_jacobian,
                rtol=1e-6,
            )
        show(f"  p = softmax({logits})", p)
        show(f"  softmax Jacobian, a = {logits}", jacobian, torch_jacobian)
        print("  (positive on the diagonal, negative elsewhere, each column sums to 0)")


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the lesson's five steps, printing each gradient by JAX next to torch's.

    Args:
      argv: the command-line arguments (none are taken), None for `sys.argv`; pass ``[]`` from Python.
    """
    _arguments.lesson_parser(__doc__, __file__).parse_args(argv)  # none taken; --help prints the docstring
    torch = _torch()
    print(
        f"Lesson 5: gradients by hand (JAX {jax.__version__}"
        + (f", torch {torch.__version__} side by side)" if torch is not None else ", torch not installed)")
    )
    mse_by_hand(torch)
    grad_versus_backward(torch)
    what_to_differentiate(torch)
    reuse_without_retain_graph(torch)
    softmax_jacobian(torch)


if __name__ == "__main__":
    main()
