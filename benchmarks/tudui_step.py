"""Speed of the jitted Tudui train and eval steps against torch eager on the same device, and time to the first step.

Run: ``python benchmarks/tudui_step.py`` (needs torch). ``--cores 1`` pins the whole run to one CPU core
(both libraries then use one thread), which gives steadier figures on a machine that other jobs share.

The contenders, one batch of 64 random 32x32x3 images, float32, the same weights everywhere:

- jaxloss: `make_train_step(Tudui(), torch_sgd(0.01))` (forward, cross-entropy, backward and SGD update in
  one jit-compiled call, parameters donated) and `make_eval_step(Tudui())`, NHWC images;
- torch eager, as the lessons run it, in NCHW and in channels_last memory format: ``loss = loss_fn(model(x),
  y); optim.zero_grad(); loss.backward(); optim.step()`` with `torch.optim.SGD(lr=0.01)`, and an evaluation
  under `torch.no_grad()` that reads the summed loss and the number of correct predictions back.

Every contender is timed in the same process, interleaved over many rounds (shuffled order, one untimed call
before each contender's timed calls to absorb the switch between libraries: torch's OpenMP workers keep
spinning after a call, XLA's pool sleeps), so that drift of a shared machine hits them alike. The report
gives median images/s and, for the ratios, the median over rounds of the per-round ratio against the faster
torch format. The first-step time is measured in a fresh interpreter with JAX's persistent compilation cache
off: tracing, compiling and running the first train step, after imports and parameter initialisation.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the `experiments` package

BATCH = 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per contender and round")
    parser.add_argument("--cores", type=int, default=0, help="pin the run to this many CPU cores (0: all)")
    parser.add_argument("--first-step-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def pin_cores(cores: int) -> None:
    """Restrict this process to its first `cores` CPUs, before JAX and torch size their thread pools."""
    if cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])


def main() -> None:
    args = parse_args()
    pin_cores(args.cores)
    if args.first_step_only:
        print(first_train_step_seconds())
        return
    run_benchmark(args)


def first_train_step_seconds() -> float:
    """Seconds to trace, compile and run the first train step, in this (fresh) process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxloss.training import make_train_step, torch_sgd
    from jaxloss.tudui import Tudui

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


def fresh_process_first_step(cores: int) -> tuple[float, float]:
    """(seconds of the first train step, seconds from interpreter start to its end) in a new interpreter."""
    command = [sys.executable, __file__, "--first-step-only", "--cores", str(cores)]
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(result.stdout.split()[-1]), time.perf_counter() - start


def random_batch(rng) -> dict:
    import numpy as np

    return {"image": rng.uniform(size=(BATCH, 32, 32, 3)).astype(np.float32),
            "label": rng.integers(0, 10, BATCH).astype(np.int32)}


def jax_contenders(batch: dict, torch_state: dict) -> dict[str, Callable[[], None]]:
    import jax

    from jaxloss.torch_interop import tudui_params_from_torch
    from jaxloss.training import make_eval_step, make_train_step, torch_sgd
    from jaxloss.tudui import Tudui

    model, optimizer = Tudui(), torch_sgd(0.01)
    train_step, eval_step = make_train_step(model, optimizer), make_eval_step(model)
    batch = jax.device_put(batch)
    eval_params = tudui_params_from_torch(torch_state)
    state = {"params": tudui_params_from_torch(torch_state)}
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

    from experiments.torch_tudui import TorchTudui
    from jaxloss.torch_interop import tudui_params_from_torch
    from jaxloss.tudui import Tudui

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
    print(f"jax {jax.__version__} on {jax_device.platform} ({jax_device.device_kind}); torch {torch.__version__} on "
          f"{device} with {torch.get_num_threads()} threads; {len(os.sched_getaffinity(0))} CPU cores; batch "
          f"{BATCH}; {args.rounds} interleaved rounds of {args.calls} calls\n")
    batch = random_batch(np.random.default_rng(0))
    torch.manual_seed(0)
    torch_state = TorchTudui().state_dict()
    check_same_logits(batch, torch_state, device)

    first_step, to_first_step = fresh_process_first_step(args.cores)
    contenders = {"jaxloss": jax_contenders(batch, torch_state),
                  "torch NCHW": torch_contenders(batch, torch_state, device, channels_last=False),
                  "torch channels_last": torch_contenders(batch, torch_state, device, channels_last=True)}
    header = f"{'step':<7}{'contender':<22}{'ms':>9}{'images/s':>11}{'jaxloss speed-up':>19}"
    print(header)
    print("-" * len(header))
    for step in ("train", "eval"):
        times = round_times({name: runs[step] for name, runs in contenders.items()}, args.rounds, args.calls)
        best_torch = min(("torch NCHW", "torch channels_last"), key=lambda name: np.median(times[name]))
        for name, samples in times.items():
            # Per-round ratios pair calls made seconds apart, so slow drift of the machine cancels.
            ratio = "" if name == "jaxloss" else f"{np.median(samples / times['jaxloss']):.2f}x"
            marker = " (best torch)" if name == best_torch else ""
            print(f"{step:<7}{name:<22}{1e3 * np.median(samples):>9.2f}{BATCH / np.median(samples):>11.0f}"
                  f"{ratio:>19}{marker}")
    print(f"\nfirst train step in a fresh process: {first_step:.2f} s (trace + compile + run; "
          f"{to_first_step:.2f} s from interpreter start, imports included)")


if __name__ == "__main__":
    main()
