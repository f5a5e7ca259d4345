"""Interleaved timing shared by the benchmarks: contenders alternate round by round, so drift hits them alike."""

import time
from collections.abc import Callable

import numpy as np


def round_times(contenders: dict[str, Callable[[], None]], rounds: int, calls: int = 3) -> dict[str, np.ndarray]:
    """Seconds per call of each contender in every round, timed interleaved: every round runs each contender in
    turn (in a shuffled order) for one untimed call and `calls` timed ones.

    The untimed call absorbs the switch between libraries: worker threads (torch's OpenMP pool, XLA's Eigen
    pool) keep spinning for a while after a call, and sleeping ones are slow to wake, either of which would
    bias a contender that runs right after another; the timed calls then see each library in its steady
    state, as in a training loop.
    """
    for run in contenders.values():  # compile and warm up
        run()
        run()
    times = {name: [] for name in contenders}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for name in order.permutation(list(contenders)):
            run = contenders[name]
            run()
            start = time.perf_counter()
            for _ in range(calls):
                run()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: np.array(samples) for name, samples in times.items()}
