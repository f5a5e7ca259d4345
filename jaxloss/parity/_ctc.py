"""ctc_loss's parity grid: values and torch's hand-written gradient of the log-probabilities.

One batch holds the situations of interest, one per row: repeated labels, targets that take every frame or
cannot align (+inf), empty targets, the blank index inside a target, inputs of no frame and of one. It runs with
padded and concatenated targets, lengths as arrays, lists and tuples, ``zero_infinity``, another blank index,
floating targets and log-probabilities that are not normalised; then unbatched inputs, a long sequence (50
frames), and log-probabilities at 1e9 scale and of exactly 0 and 1 (-inf).
"""

from typing import Any

import numpy as np

from jaxloss.parity._case import Case, grid
from jaxloss.testing import Tolerance

rng = np.random.default_rng(0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return log_probs


def random_log_probs(steps: int, batch: int, classes: int, scale: float = 1.0) -> np.ndarray:
    return log_softmax(scale * rng.standard_normal((steps, batch, classes)))


def concatenate(targets: np.ndarray, target_lengths: np.ndarray) -> np.ndarray:
    """Padded (N, S) targets as torch's 1-D concatenated layout."""
    return np.concatenate([row[:length] for row, length in zip(targets, target_lengths, strict=True)]).astype(np.int64)


def ctc_arrays(log_probs: np.ndarray, targets: Any, input_lengths: Any, target_lengths: Any) -> dict[str, np.ndarray]:
    return dict(
        log_probs=log_probs,
        targets=np.asarray(targets),
        input_lengths=np.asarray(input_lengths, dtype=np.int64),
        target_lengths=np.asarray(target_lengths, dtype=np.int64),
    )


# One batch that holds the situations of interest, one per row (S = 4, T = 8, C = 5). Padding holds -1 and
# out-of-range labels: torch never reads it, nor does jaxloss.
MIXED_TARGETS = np.array(
    [
        [1, 2, 2, 3],  # repeated labels need a blank between them: "1223" takes 5 frames of the 8
        [3, 3, 3, -1],  # "333" takes exactly 5 frames: one alignment
        [3, 3, 3, 9],  # ... and cannot align to 4: +inf (NaN gradient unless zero_infinity)
        [2, -1, 9, 9],  # empty target: -sum of log p(blank)
        [4, 1, 0, 4],  # the blank index inside a target
        [1, 2, 0, 0],  # no frames, empty target: 0
        [1, 2, 0, 0],  # no frames, non-empty target: +inf, but no frame to get a gradient
        [2, 0, 0, 0],  # a single frame for a single label
        [2, 2, 0, 0],  # ... and for a repeat: +inf
        [4, 2, 1, 3],  # full input, all different
    ]
)
MIXED_INPUT_LENGTHS = np.array([8, 5, 4, 8, 6, 0, 0, 1, 1, 8])
MIXED_TARGET_LENGTHS = np.array([4, 3, 3, 0, 4, 0, 2, 1, 2, 4])


def mixed(log_probs: np.ndarray | None = None, **changes: np.ndarray) -> dict[str, np.ndarray]:
    arrays = ctc_arrays(
        random_log_probs(8, 10, 5) if log_probs is None else log_probs,
        MIXED_TARGETS,
        MIXED_INPUT_LENGTHS,
        MIXED_TARGET_LENGTHS,
    )
    return {**arrays, **changes}


def extreme_log_probs() -> np.ndarray:
    """Log-softmax of logits of scale 1e9 and 100, alternating by row (posteriors of exactly 0 and 1, forced
    alignments through classes far below the others), and probabilities exactly 0 and 1 (log_probs of -inf,
    where torch's gradient is NaN): row 9 has probability 1 of its target, row 3 probability 0 of its (empty)
    target."""
    log_probs = log_softmax(np.array([1e9, 100.0] * 5)[None, :, None] * rng.standard_normal((8, 10, 5)))
    with np.errstate(divide="ignore"):
        log_probs[:, 9] = np.log(np.eye(5)[[0, 4, 0, 2, 1, 0, 3, 0]])
        log_probs[:, 3] = np.log(np.eye(5)[[0, 0, 1, 0, 0, 0, 0, 0]])
    return log_probs


def ctc_cases() -> list[Case]:
    """The grid's cases, variant by variant (each with its own reductions)."""
    unbatched = dict(
        log_probs=random_log_probs(8, 1, 5)[:, 0],
        targets=MIXED_TARGETS[0],
        input_lengths=np.array(8),
        target_lengths=np.array(4),
    )
    extreme = extreme_log_probs()
    long = ctc_arrays(random_log_probs(50, 3, 8), rng.integers(1, 8, (3, 20)), [50, 41, 30], [20, 13, 0])
    none = ("none",)
    variants: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
        "mixed": (dict(arrays=mixed()), ("none", "mean")),  # 'sum': extreme_zero_infinity below
        # Lengths as a list and a tuple, as torch accepts them.
        "mixed_zero_infinity_list_lengths": (
            dict(
                arrays=dict(log_probs=mixed()["log_probs"], targets=MIXED_TARGETS),
                options=dict(
                    input_lengths=MIXED_INPUT_LENGTHS.tolist(),
                    target_lengths=tuple(MIXED_TARGET_LENGTHS.tolist()),
                    zero_infinity=True,
                ),
            ),
            ("mean",),
        ),
        "mixed_concatenated": (
            dict(
                arrays=mixed(targets=concatenate(MIXED_TARGETS, MIXED_TARGET_LENGTHS)), options=dict(zero_infinity=True)
            ),
            none,
        ),
        # blank=3: rows 0-2 end with the blank index (torch drops a term of the last frame's gradient there).
        # Floating targets are truncated to integers, as torch does; log_probs are not checked to be normalised.
        "blank3_float_targets_not_normalised": (
            dict(
                arrays=mixed(random_log_probs(8, 10, 5) + 1.0, targets=MIXED_TARGETS + 0.75),
                options=dict(blank=3, zero_infinity=True),
            ),
            none,
        ),
        "all_targets_empty": (
            dict(arrays=mixed(targets=np.zeros(0, np.int64), target_lengths=np.zeros(10, np.int64))),
            ("mean",),
        ),
        "unbatched": (dict(arrays=unbatched), ("mean",)),
        "unbatched_padded": (
            dict(
                arrays={
                    **unbatched,
                    "targets": MIXED_TARGETS[:1],
                    "input_lengths": np.array([7]),
                    "target_lengths": np.array([3]),
                }
            ),
            none,
        ),
        "batch1_scalar_lengths": (
            dict(arrays={**unbatched, "log_probs": unbatched["log_probs"][:, None], "targets": MIXED_TARGETS[:1]}),
            none,
        ),
        "long": (dict(arrays=long, tolerance={"float32": Tolerance(rtol=1e-4, atol=1e-5)}), none),  # 50 log-adds
        # Extreme inputs. The gradient is then exp of differences of numbers near 1e10, whose float64 spacing
        # is ~2e-6: torch's gradient is no more accurate than that either (the two differ by ~3e-7).
        "extreme": (dict(arrays=mixed(extreme), tolerance={"float64": Tolerance(rtol=1e-6, atol=1e-6)}), none),
        "extreme_zero_infinity": (
            dict(
                arrays=mixed(extreme),
                options=dict(zero_infinity=True),
                tolerance={"float64": Tolerance(rtol=1e-6, atol=1e-6)},
            ),
            ("sum",),
        ),
    }
    cases = []
    for name, (fields, reductions) in variants.items():
        cases += grid("ctc_loss", {name: {**fields, "grad": ("log_probs",)}}, reductions)
    return cases


CASES: list[Case] = ctc_cases()

# In 16 bits too (`Case.in_16_bit`): one case: the mixed batch, which holds every row's situation at once, with
# zero_infinity and lengths as lists, in 'mean'.
CASES += [case.in_16_bit() for case in CASES if case.id == "ctc_loss-mixed_zero_infinity_list_lengths-mean"]
