"""Memory (and time) of linear_cross_entropy's chunked path against the unfused ``cross_entropy(x @ W.T)``.

Run: ``python benchmarks/linear_cross_entropy_memory.py`` (about 5 minutes on 2 CPU cores; ``--sizes`` and
``--repeats`` change the work).

Every contender is the jitted ``jax.value_and_grad`` of the mean loss with respect to the input ``x (N, in)``
and the weight ``W (C, in)``, on float32 data with int32 targets:

* ``unfused``: ``cross_entropy(x @ W.T, t)``, what one writes without the fused loss;
* ``chunked auto``: ``linear_cross_entropy(x, W, t, options=LinearCrossEntropyOptions())``, torch's default
  chunk size (``'aspect_ratio:2'``: a chunk's logits take about half the memory of ``x``);
* ``chunked 1024``: the same with ``batch_chunk_size=1024``.

Two memory figures per contender:

* **XLA's buffer assignment**, from ``jax.jit(...).lower(...).compile().memory_analysis()``: the temporary
  bytes (every intermediate buffer, packed by liveness: the program's scratch peak, the (N, C) logits and
  their gradient for the unfused loss) plus the output bytes (the loss, dx and dW: the same for all). The
  argument bytes (x, W, t: the caller's) are left out, being the same for all.
* **Peak RSS** of a fresh process per contender (``ru_maxrss``) that builds the inputs, compiles, and runs
  the program once plus `--repeats` timed times; and that peak minus the RSS the process had once its inputs
  were ready (the interpreter, JAX and the inputs), which is what the program (compiler included) added.

The time is the median wall time of the timed runs; the ratio divides by the unfused one. The chunked
path does one more logits matmul per chunk (the recomputation), and every chunk adds its (C, in) gradient
into dW: many small chunks make the backward pass bound by that accumulation.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CONTENDERS = ("unfused", "chunked auto", "chunked 1024")


def run_contender(name: str, num_rows: int, in_features: int, num_classes: int, repeats: int) -> dict:
    """Measures one contender in this (fresh) process; returns its figures."""
    import jax
    import jax.numpy as jnp

    import jaxloss.functional as F
    from jaxloss.nn import LinearCrossEntropyOptions

    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (num_rows, in_features), jnp.float32)
    w = jax.random.normal(keys[1], (num_classes, in_features), jnp.float32) / in_features**0.5
    t = jax.random.randint(keys[2], (num_rows,), 0, num_classes, jnp.int32)
    jax.block_until_ready((x, w, t))
    baseline_rss = _current_rss()

    if name == "unfused":

        def loss(x, w, t):
            return F.cross_entropy(x @ w.T, t)

        chunk = num_rows
    else:
        options = LinearCrossEntropyOptions(**({} if name == "chunked auto" else {"batch_chunk_size": 1024}))
        chunk = options.chunk_size(num_rows, in_features, num_classes)

        def loss(x, w, t):
            return F.linear_cross_entropy(x, w, t, options=options)

    compiled = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(x, w, t).compile()
    memory = compiled.memory_analysis()
    jax.block_until_ready(compiled(x, w, t))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(x, w, t))
        times.append(time.perf_counter() - start)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return dict(
        chunk=chunk,
        temp=memory.temp_size_in_bytes,
        output=memory.output_size_in_bytes,
        peak_rss=peak_rss,
        rss_added=peak_rss - baseline_rss,
        time=statistics.median(times),
    )


def _current_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8192,512,32768", "16384,256,32768"], help="N,in,C ...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.contender:
        (size,) = args.sizes
        print(json.dumps(run_contender(args.contender, *map(int, size.split(",")), args.repeats)))
        return

    mib = 2**20
    print(
        f"{'N, in, C':>20} {'contender':>13} {'rows/chunk':>10} {'temp MiB':>9} {'out MiB':>8} "
        f"{'temp+out':>9} {'logits MiB':>10} {'peak RSS':>9} {'RSS added':>9} {'time s':>7} {'t/unfused':>9}"
    )
    for size in args.sizes:
        num_rows, _, num_classes = map(int, size.split(","))
        results = {}
        for name in CONTENDERS:
            child = subprocess.run(
                [sys.executable, __file__, "--contender", name, "--sizes", size, "--repeats", str(args.repeats)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[name] = r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{size:>20} {name:>13} {r['chunk']:>10} {r['temp'] / mib:>9.1f} {r['output'] / mib:>8.1f} "
                f"{(r['temp'] + r['output']) / mib:>9.1f} {num_rows * num_classes * 4 / mib:>10.0f} "
                f"{r['peak_rss'] / mib:>9.0f} {r['rss_added'] / mib:>9.0f} {r['time']:>7.2f} "
                f"{r['time'] / results['unfused']['time']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
