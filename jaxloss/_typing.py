"""Types shared by the public signatures."""

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from jax.typing import ArrayLike

Reduction: TypeAlias = Literal["none", "mean", "sum"]
"""The `reduction` of every loss but `kl_div`: keep the element losses, or their mean or sum."""

KLDivReduction: TypeAlias = Literal["none", "batchmean", "sum", "mean"]
"""`kl_div`'s `reduction`: also ``'batchmean'``, the sum divided by the batch size."""

DistanceFunction: TypeAlias = Callable[[Any, Any], ArrayLike]
"""A distance between two arrays, the triplet losses' inputs as given; e.g. `functional.pairwise_distance`."""

Lengths: TypeAlias = ArrayLike | list[int] | tuple[int, ...]
"""`ctc_loss`'s sequence lengths: an integer array, or a list or tuple of ints."""
