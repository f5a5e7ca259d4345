"""Speed of the jitted Tudui train and eval steps against torch eager on the same device, and time to the first step.

Run: ``python benchmarks/tudui_step.py`` (needs torch). ``--cores 1`` pins the whole run to one CPU core
(both libraries then use one thread), which gives steadier figures on a machine that other jobs share. The
report begins with the devices it ran on: the same command on a GPU machine (``pip install -e '.[cuda12,bench]'``)
times JAX and torch on the GPU. ``--cpu_devices 2`` splits the CPU into 2 JAX devices, ``--bfloat16`` adds
mixed precision.

The contenders, one batch of 64 random 32x32x3 images, float32, the same weights everywhere:

- jaxloss: `make_train_step(Tudui(), torch_sgd(0.01))` (forward, cross-entropy, backward and SGD update in
  one jit-compiled call, parameters donated) and `make_eval_step(Tudui())`, NHWC images, on one device;
- where JAX sees several devices, the same steps data-parallel over all of them (`experiments.distributed`: the
  batch split over a mesh, parameters replicated), and with ``--bfloat16``, `Tudui(dtype=jnp.bfloat16)`;
- torch eager, as the lessons run it, in NCHW and in channels_last memory format: ``loss = loss_fn(model(x),
  y); optim.zero_grad(); loss.backward(); optim.step()`` with `torch.optim.SGD(lr=0.01)`, and an evaluation
  under `torch.no_grad()` that reads the summed loss and the number of correct predictions back.

Every contender is timed in the same process, interleaved over many rounds (shuffled order, one untimed call
before each contender's timed calls to absorb the switch between libraries: torch's OpenMP workers keep
spinning after a call, XLA's pool sleeps), so that drift of a shared machine hits them alike. The report
gives median images/s and, for the ratios, the median over rounds of the per-round ratio against the faster
torch format. The first-step time is measured in a fresh interpreter with JAX's persistent compilation cache
off: tracing, compiling and running the first train step, after imports and parameter initialisation; then
twice with a new persistent compilation cache, as `main.py` keeps one: cold (compiled and stored) and warm
(loaded).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the `experiments` package

BATCH = 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per contender and round")
    parser.add_argument("--cores", type=int, default=0, help="pin the run to this many CPU cores (0: all)")
    parser.add_argument("--cpu_devices", type=int, default=1, help="JAX devices to make of the CPU")
    parser.add_argument("--bfloat16", action="store_true", help="also time mixed precision (bfloat16 compute)")
    parser.add_argument("--first-step-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compilation-cache", default="", help=argparse.SUPPRESS)  # with --first-step-only
    return parser.parse_args()


def pin_cores(cores: int) -> None:
    """Restrict this process to its first `cores` CPUs, before JAX and torch size their thread pools."""
    if cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])


def main() -> None:
    args = parse_args()
    pin_cores(args.cores)
    import jax

    jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before JAX starts its CPU backend
    if args.first_step_only:
        print(first_train_step_seconds(args.compilation_cache))
        return
    run_benchmark(args)


def first_train_step_seconds(compilation_cache: str) -> float:
    """Seconds to trace, compile (or load from `compilation_cache`, if given) and run the first train step, in
    this (fresh) process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from experiments.models import Tudui
    from experiments.train_steps import make_train_step, torch_sgd

    if compilation_cache:
        from experiments import compilation_cache as cache

        cache.enable(compilation_cache)
    else:
        jax.config.update("jax_enable_compilation_cache", False)
    model, optimizer = Tudui(), torch_sgd(0.01)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    opt_state = optimizer.init(params)
    batch = jax.device_put(random_batch(np.random.default_rng(0)))
    jax.block_until_ready((params, opt_state, batch))
    start = time.perf_counter()
    train_step = make_train_step(model, optimizer)
    jax.block_until_ready(train_step(params, opt_state, batch))
    return time.perf_counter() - start


def fresh_process_first_step(cores: int, compilation_cache: str = "") -> tuple[float, float]:
    """(seconds of the first train step, seconds from interpreter start to its end) in a new interpreter, with
    JAX's persistent compilation cache in `compilation_cache` (off if empty)."""
    command = [sys.executable, __file__, "--first-step-only", "--cores", str(cores)]
    command += ["--compilation-cache", compilation_cache]
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(result.stdout.split()[-1]), time.perf_counter() - start


def random_batch(rng) -> dict:
    import numpy as np

    return {
        "image": rng.uniform(size=(BATCH, 32, 32, 3)).astype(np.float32),
        "label": rng.integers(0, 10, BATCH).astype(np.int32),
    }


def jax_contenders(batch: dict, torch_state: dict, num_devices: int = 1, dtype=None) -> dict[str, Callable[[], None]]:
    """jaxloss's train and eval steps on a mesh of `num_devices` devices, computing in `dtype` (None: float32)."""
    import jax

    from experiments import distributed
    from experiments.models import Tudui
    from experiments.torch_interop import tudui_params_from_torch
    from experiments.train_steps import make_eval_step, make_train_step, torch_sgd

    model, optimizer = Tudui(dtype=dtype), torch_sgd(0.01)
    train_step, eval_step = make_train_step(model, optimizer), make_eval_step(model)
    mesh = distributed.data_mesh(num_devices)
    batch = jax.device_put(batch, distributed.batch_sharding(mesh))
    eval_params = jax.device_put(tudui_params_from_torch(torch_state), distributed.replicated(mesh))
    state = {"params": jax.device_put(tudui_params_from_torch(torch_state), distributed.replicated(mesh))}
    state["opt_state"] = optimizer.init(state["params"])

    def train():
        state["params"], state["opt_state"], metrics = train_step(state["params"], state["opt_state"], batch)
        jax.block_until_ready(metrics)

    return {"train": train, "eval": lambda: jax.block_until_ready(eval_step(eval_params, batch))}


def torch_contenders(batch: dict, torch_state: dict, device, channels_last: bool) -> dict[str, Callable[[], None]]:
    import torch

    from experiments.torch_tudui import TorchTudui

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = TorchTudui().to(device, memory_format=memory_format)
    model.load_state_dict(torch_state)
    images = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).to(device, memory_format=memory_format)
    labels = torch.from_numpy(batch["label"]).long().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    eval_model = TorchTudui().to(device, memory_format=memory_format).eval()
    eval_model.load_state_dict(torch_state)
    summed_loss = torch.nn.CrossEntropyLoss(reduction="sum")

    def train():
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the step, as block_until_ready does (needed on GPU)

    def evaluate():
        with torch.no_grad():
            logits = eval_model(images)
            summed_loss(logits, labels).item()
            (logits.argmax(1) == labels).sum().item()

    return {"train": train, "eval": evaluate}


def check_same_logits(batch: dict, torch_state: dict, device) -> None:
    """Fails loudly unless both libraries compute the same logits from the same weights (like is compared with like)."""
    import numpy as np
    import torch

    from experiments.models import Tudui
    from experiments.torch_interop import tudui_params_from_torch
    from experiments.torch_tudui import TorchTudui

    model = TorchTudui().to(device)
    model.load_state_dict(torch_state)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).to(device)).cpu().numpy()
    logits = np.asarray(Tudui().apply(tudui_params_from_torch(torch_state), batch["image"]))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5, err_msg="jaxloss and torch disagree")


def run_benchmark(args: argparse.Namespace) -> None:
    import jax
    import numpy as np
    import torch
    from interleaved import round_times  # benchmarks/, the script's own folder

    from experiments.torch_tudui import TorchTudui

    device = "cuda" if torch.cuda.is_available() else "cpu"
    jax_device = jax.devices()[0]
    torch_device = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"jax {jax.__version__} on {jax.device_count()} x {jax_device.platform} ({jax_device.device_kind}); "
        f"torch {torch.__version__} on {device} ({torch_device}) with {torch.get_num_threads()} threads; "
        f"{len(os.sched_getaffinity(0))} CPU cores; batch {BATCH}; {args.rounds} interleaved rounds of "
        f"{args.calls} calls\n"
    )
    batch = random_batch(np.random.default_rng(0))
    torch.manual_seed(0)
    torch_state = TorchTudui().state_dict()
    check_same_logits(batch, torch_state, device)

    first_step, to_first_step = fresh_process_first_step(args.cores)
    with tempfile.TemporaryDirectory() as cache:  # as main.py's --compilation_cache_dir: filled, then reused
        cached_steps = [fresh_process_first_step(args.cores, cache)[0] for _ in range(2)]
    contenders = {"jaxloss": jax_contenders(batch, torch_state)}
    if jax.device_count() > 1:
        contenders[f"jaxloss {jax.device_count()} devices"] = jax_contenders(batch, torch_state, jax.device_count())
    if args.bfloat16:
        contenders["jaxloss bfloat16"] = jax_contenders(batch, torch_state, dtype=jax.numpy.bfloat16)
    torch_names = ("torch NCHW", "torch channels_last")
    for name, channels_last in zip(torch_names, (False, True), strict=True):
        contenders[name] = torch_contenders(batch, torch_state, device, channels_last=channels_last)
    header = f"{'step':<7}{'contender':<24}{'ms':>9}{'images/s':>11}{'speed / best torch':>21}"
    print(header)
    print("-" * len(header))
    for step in ("train", "eval"):
        times = round_times({name: runs[step] for name, runs in contenders.items()}, args.rounds, args.calls)
        best_torch = min(torch_names, key=lambda name: np.median(times[name]))
        for name, samples in times.items():
            # Per-round ratios pair calls made seconds apart, so slow drift of the machine cancels.
            ratio = "" if name in torch_names else f"{np.median(times[best_torch] / samples):.2f}x"
            marker = " (best torch)" if name == best_torch else ""
            print(
                f"{step:<7}{name:<24}{1e3 * np.median(samples):>9.2f}{BATCH / np.median(samples):>11.0f}"
                f"{ratio:>21}{marker}"
            )
    print(
        f"\nfirst train step in a fresh process: {first_step:.2f} s (trace + compile + run; "
        f"{to_first_step:.2f} s from interpreter start, imports included)"
    )
    print(
        f"with the persistent compilation cache (main.py's default): {cached_steps[0]:.2f} s the first time, "
        f"{cached_steps[1]:.2f} s when the cache holds the step"
    )


if __name__ == "__main__":
    main()
