"""The whole parity grid: every loss's cases, by family, built when first asked for."""

import importlib
from collections.abc import Iterable

from jaxloss.parity._case import Case

FAMILIES: dict[str, tuple[str, ...]] = {
    "regression": ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"),
    "classification": ("cross_entropy", "nll_loss"),
    "binary": (
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "soft_margin_loss",
        "multilabel_soft_margin_loss",
    ),
    "distributions": ("kl_div", "poisson_nll_loss", "gaussian_nll_loss"),
    "margin": ("multilabel_margin_loss", "multi_margin_loss", "margin_ranking_loss", "hinge_embedding_loss"),
    "embedding": (
        "cosine_embedding_loss",
        "pairwise_distance",
        "triplet_margin_loss",
        "triplet_margin_with_distance_loss",
    ),
    "ctc": ("ctc_loss",),
    "linear_cross_entropy": ("linear_cross_entropy",),
}

LOSSES: tuple[str, ...] = tuple(loss for losses in FAMILIES.values() for loss in losses)


def cases(losses: Iterable[str] | None = None) -> list[Case]:
    """The parity grid's cases, family by family.

    Args:
      losses: the losses whose cases to return (names in `LOSSES`); ``None`` for all of them.

    Returns:
      The cases, in the grid's order. Building a family's cases draws its data from a fixed seed, so they are the
      same on every call and every machine.

    Raises:
      ValueError: if `losses` names a loss the grid does not have.
    """
    wanted = set(LOSSES if losses is None else losses)
    unknown = sorted(wanted - set(LOSSES))
    if unknown:
        raise ValueError(f"`losses` names {unknown}, which the parity grid does not have; it has {list(LOSSES)}")
    found = []
    for family, members in FAMILIES.items():
        if wanted.intersection(members):
            module = importlib.import_module(f"jaxloss.parity._{family}")
            found += [case for case in module.CASES if case.loss in wanted]
    return found
