"""Mistakes the type checker must report, each silenced by a `type: ignore` naming the expected error.

mypy runs with ``warn_unused_ignores`` (pyproject's ``[tool.mypy]``): should an annotation loosen so that a
mistake below is no longer reported, its ignore becomes unused and the check fails. Never called.
"""

import jax

import jaxloss
import jaxloss.functional as F
from jaxloss import nn


def misuses(logits: jax.Array, labels: jax.Array) -> None:
    F.cross_entropy(logits, labels, reduction="avg")  # type: ignore[arg-type]
    F.kl_div(logits, logits, reduction="average")  # type: ignore[arg-type]
    F.mse_loss(logits, "0.5")  # type: ignore[arg-type]
    F.mse_loss(logits, [0.5, 1.5])  # type: ignore[arg-type]  # jax.jit refuses lists too
    F.l1_loss(logits)  # type: ignore[call-arg]
    F.cross_entropy(logits, labels, dim=-1)  # type: ignore[call-arg]  # torch's layout; the extra is `axis`
    F.cross_entropy(logits, labels, None, -100, "mean", 0.0, -1)  # type: ignore[call-arg]  # `axis` is keyword-only
    F.huber_loss(logits, logits, delta=None)  # type: ignore[arg-type]
    F.multi_margin_loss(logits, labels, p=2.5)  # type: ignore[arg-type]
    F.triplet_margin_with_distance_loss(logits, logits, logits, distance_function=abs)  # type: ignore[arg-type]
    F.ctc_loss(logits, labels, [4.0, 3.0], [2, 1])  # type: ignore[list-item]
    total: float = F.mse_loss(logits, logits)  # type: ignore[assignment]
    assert total
    jaxloss.checkify(F.nll_loss)(logits)  # type: ignore[call-arg]
    nn.L1Loss(reduction="avg")  # type: ignore[arg-type]
    nn.KLDivLoss(reduction="average")  # type: ignore[arg-type]
    nn.GaussianNLLLoss(True)  # type: ignore[call-arg]  # keyword-only options, as in torch
    nn.CrossEntropyLoss(size_average=True)  # type: ignore[call-arg]  # torch's deprecated arguments are gone
    nn.MSELoss()(logits)  # type: ignore[call-arg]
    nn.MSELoss().reduction = "sum"  # type: ignore[misc]  # frozen
    nn.LinearCrossEntropyOptions(acc_policy="fast")  # type: ignore[arg-type]
