"""Compilations of a loss called eagerly with 20 values of a real-number option: one, whatever the values.

Run: ``python benchmarks/compile_count.py`` (no extra needed).

A margin, label-smoothing or β schedule calls a loss with a new Python float at every step. The options are data
(see docs/losses.md), so every value, and ``1``, ``1.0`` or ``np.float32(1)`` alike, shares one compilation; as
static options they used to compile once per value. The report counts, in a fresh process, the XLA compilations
(as `jax.log_compiles` logs them) over 20 calls with 20 values: all at the first value, none after it; and
the mean time of the calls after the first.
"""

import argparse
import collections
import logging
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss.functional as F


class CompilationLog(logging.Handler):
    """Counts the compilations that `jax.log_compiles` reports, by the compiled function's name."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.names: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names[message.split()[1]] += 1


def losses(rng: np.random.Generator) -> dict[str, tuple[str, Callable[[float], jax.Array]]]:
    """Each benchmark's name: the option it varies, and the loss as a function of that option's value."""
    x, y = jnp.asarray(rng.standard_normal((256, 10)), jnp.float32), jnp.asarray(rng.standard_normal((256, 10)))
    labels = jnp.asarray(rng.integers(0, 10, 256))
    signs = jnp.asarray(rng.choice([-1.0, 1.0], 256))
    return {
        "smooth_l1_loss": ("beta", lambda v: F.smooth_l1_loss(x, y, beta=v)),
        "huber_loss": ("delta", lambda v: F.huber_loss(x, y, delta=v)),
        "cross_entropy": ("label_smoothing", lambda v: F.cross_entropy(x, labels, label_smoothing=v)),
        "multi_margin_loss": ("margin", lambda v: F.multi_margin_loss(x, labels, margin=v)),
        "margin_ranking_loss": ("margin", lambda v: F.margin_ranking_loss(x[:, 0], y[:, 0], signs, margin=v)),
        "triplet_margin_loss": ("margin", lambda v: F.triplet_margin_loss(x, y, -y, margin=v)),
        "gaussian_nll_loss": ("eps", lambda v: F.gaussian_nll_loss(x, y, jnp.abs(y), eps=v)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=20, help="option values per loss")
    args = parser.parse_args()
    log = CompilationLog()
    logging.getLogger("jax").addHandler(log)
    values = np.linspace(0.05, 1.0, args.values)
    print(f"{'loss':<22} {'option':<15} {'values':>6} {'compilations':>12} {'after the first':>16} {'ms/call':>8}")
    with jax.log_compiles():
        for name, (option, loss) in losses(np.random.default_rng(0)).items():
            log.names.clear()
            jax.block_until_ready(loss(float(values[0])))
            first = sum(log.names.values())
            start = time.perf_counter()
            for value in values[1:]:
                jax.block_until_ready(loss(float(value)))
            per_call = (time.perf_counter() - start) / (len(values) - 1) * 1e3
            later = sum(log.names.values()) - first
            print(f"{name:<22} {option:<15} {len(values):>6} {first + later:>12} {later:>16} {per_call:>8.3f}")
    print("(the first value compiles the loss and the eager helpers of its wrapper, once each)")


if __name__ == "__main__":
    main()
