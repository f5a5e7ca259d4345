"""Speed of jaxloss against optax's nearest loss and torch eager, forward and forward+backward.

Run: ``python benchmarks/losses.py`` (needs the `bench` extra: torch and optax).

Every contender is timed in the same process, interleaved call by call over many rounds so that drift of a
shared machine hits all of them alike; the report gives median times and the median over rounds of the ratios
jaxloss/optax and jaxloss/torch within a round (below 1 means jaxloss is faster). JAX functions are jitted and
called with ready device arrays; torch runs eagerly, as its users run it, on the same CPU threads.
"""

import argparse
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from interleaved import round_times  # benchmarks/, the script's own folder

import jaxloss.functional as F


@dataclasses.dataclass
class Benchmark:
    """One loss on one problem: a callable per contender, each computing the scalar loss (forward) or the
    loss and its gradient with respect to the first argument (forward+backward)."""

    name: str
    jaxloss: Callable
    optax: Callable
    torch: Callable
    jax_args: tuple
    torch_args: tuple


def jax_contender(loss_fn: Callable, args: tuple, backward: bool) -> Callable[[], None]:
    compiled = jax.jit(jax.value_and_grad(loss_fn) if backward else loss_fn)
    return lambda: jax.block_until_ready(compiled(*args))


def torch_contender(loss_fn: Callable, args: tuple, backward: bool) -> Callable[[], None]:
    first, *rest = args
    if not backward:

        def forward():
            with torch.no_grad():
                loss_fn(first, *rest)

        return forward
    first = first.clone().requires_grad_()

    def forward_backward():
        first.grad = None  # what optimizer.zero_grad() does
        loss_fn(first, *rest).backward()

    return forward_backward


def optax_smoothed_weighted_ce(logits, labels, weight, ignore_index, smoothing):
    """What an optax user writes for torch's cross_entropy(weight, ignore_index, label_smoothing)."""
    num_classes = logits.shape[-1]
    safe = jnp.where(labels == ignore_index, 0, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(safe, num_classes), smoothing)
    per_class_weight = jnp.where(labels == ignore_index, 0.0, weight[safe])
    # torch weights the smoothing term class by class: weight the soft targets the same way.
    losses = optax.softmax_cross_entropy(logits, targets * weight) * jnp.where(labels == ignore_index, 0.0, 1.0)
    return losses.sum() / per_class_weight.sum()


def benchmarks(rng: np.random.Generator) -> list[Benchmark]:
    n, c = 8192, 1000
    logits = rng.standard_normal((n, c)).astype(np.float32)
    labels = rng.integers(0, c, n)
    labels[::10] = -100  # ignored positions
    clean_labels = np.where(labels < 0, 0, labels)
    weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
    log_probs = np.asarray(jax.nn.log_softmax(logits))
    bce_logits = rng.standard_normal((4096, 1024)).astype(np.float32)
    bce_targets = rng.uniform(size=(4096, 1024)).astype(np.float32)
    x = rng.standard_normal((4096, 1024)).astype(np.float32)
    y = rng.standard_normal((4096, 1024)).astype(np.float32)
    j, t = jnp.asarray, torch.tensor
    torch_f = torch.nn.functional
    return [
        Benchmark(
            "cross_entropy 8192x1000",
            lambda a, b: F.cross_entropy(a, b),
            lambda a, b: optax.softmax_cross_entropy_with_integer_labels(a, b).mean(),
            lambda a, b: torch_f.cross_entropy(a, b),
            (j(logits), j(clean_labels)),
            (t(logits), t(clean_labels)),
        ),
        Benchmark(
            "cross_entropy +ignore+smoothing+weight",
            lambda a, b, w: F.cross_entropy(a, b, weight=w, ignore_index=-100, label_smoothing=0.1),
            lambda a, b, w: optax_smoothed_weighted_ce(a, b, w, -100, 0.1),
            lambda a, b, w: torch_f.cross_entropy(a, b, weight=w, ignore_index=-100, label_smoothing=0.1),
            (j(logits), j(labels), j(weight)),
            (t(logits), t(labels), t(weight)),
        ),
        Benchmark(
            "nll_loss 8192x1000",
            lambda a, b: F.nll_loss(a, b),
            # optax has no NLL of log-probabilities; its nearest is the integer-label gather written by hand.
            lambda a, b: -jnp.take_along_axis(a, b[:, None], axis=1).mean(),
            lambda a, b: torch_f.nll_loss(a, b),
            (j(log_probs), j(clean_labels)),
            (t(log_probs), t(clean_labels)),
        ),
        Benchmark(
            "binary_cross_entropy_with_logits 4096x1024",
            lambda a, b: F.binary_cross_entropy_with_logits(a, b),
            lambda a, b: optax.sigmoid_binary_cross_entropy(a, b).mean(),
            lambda a, b: torch_f.binary_cross_entropy_with_logits(a, b),
            (j(bce_logits), j(bce_targets)),
            (t(bce_logits), t(bce_targets)),
        ),
        Benchmark(
            "mse_loss 4096x1024",
            lambda a, b: F.mse_loss(a, b),
            lambda a, b: optax.squared_error(a, b).mean(),
            lambda a, b: torch_f.mse_loss(a, b),
            (j(x), j(y)),
            (t(x), t(y)),
        ),
        Benchmark(
            "smooth_l1_loss 4096x1024",
            lambda a, b: F.smooth_l1_loss(a, b),
            lambda a, b: optax.huber_loss(a, b, delta=1.0).mean(),  # equal to smooth_l1 at beta = delta = 1
            lambda a, b: torch_f.smooth_l1_loss(a, b),
            (j(x), j(y)),
            (t(x), t(y)),
        ),
    ]


def check_agreement(bench: Benchmark) -> None:
    """Fails loudly if the contenders do not compute the same loss (so the timings compare like with like)."""
    values = {
        "jaxloss": float(jax.jit(bench.jaxloss)(*bench.jax_args)),
        "optax": float(jax.jit(bench.optax)(*bench.jax_args)),
        "torch": float(bench.torch(*bench.torch_args)),
    }
    if not np.allclose(list(values.values()), values["torch"], rtol=1e-4):
        raise AssertionError(f"{bench.name}: the contenders disagree: {values}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds per case")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = parser.parse_args()

    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; {args.rounds} interleaved rounds; median ms per call\n"
    )
    header = f"{'loss':<44}{'pass':<9}{'jaxloss':>9}{'optax':>9}{'torch':>9}{'/optax':>9}{'/torch':>9}"
    print(header)
    print("-" * len(header))
    for bench in benchmarks(np.random.default_rng(0)):
        if args.only not in bench.name:
            continue
        check_agreement(bench)
        for backward in (False, True):
            contenders = {
                "jaxloss": jax_contender(bench.jaxloss, bench.jax_args, backward),
                "optax": jax_contender(bench.optax, bench.jax_args, backward),
                "torch": torch_contender(bench.torch, bench.torch_args, backward),
            }
            times = round_times(contenders, args.rounds)
            ms = {name: 1e3 * np.median(samples) for name, samples in times.items()}
            # Ratios pair the calls of one round (run seconds apart), so slow drift of the machine cancels.
            ratio = {name: np.median(times["jaxloss"] / times[name]) for name in ("optax", "torch")}
            print(
                f"{bench.name:<44}{'fwd+bwd' if backward else 'fwd':<9}{ms['jaxloss']:>9.2f}"
                f"{ms['optax']:>9.2f}{ms['torch']:>9.2f}{ratio['optax']:>9.2f}{ratio['torch']:>9.2f}"
            )


if __name__ == "__main__":
    main()
