"""PyTorch's `torch.nn.functional` losses as pure JAX functions, with torch's values and gradients.

Same names, argument names, order and defaults as torch 2.13, without the deprecated `size_average` and
`reduce`. Because those are gone, arguments after `weight` in `cross_entropy`/`nll_loss` and after `full` in
`poisson_nll_loss` sit one or two places earlier than in torch: pass them by keyword.
"""

from jaxloss._binary import binary_cross_entropy as binary_cross_entropy
from jaxloss._binary import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from jaxloss._binary import multilabel_soft_margin_loss as multilabel_soft_margin_loss
from jaxloss._binary import soft_margin_loss as soft_margin_loss
from jaxloss._classification import cross_entropy as cross_entropy
from jaxloss._classification import nll_loss as nll_loss
from jaxloss._ctc import ctc_loss as ctc_loss
from jaxloss._distributions import gaussian_nll_loss as gaussian_nll_loss
from jaxloss._distributions import kl_div as kl_div
from jaxloss._distributions import poisson_nll_loss as poisson_nll_loss
from jaxloss._embedding import cosine_embedding_loss as cosine_embedding_loss
from jaxloss._embedding import pairwise_distance as pairwise_distance
from jaxloss._embedding import triplet_margin_loss as triplet_margin_loss
from jaxloss._embedding import triplet_margin_with_distance_loss as triplet_margin_with_distance_loss
from jaxloss._linear_cross_entropy import linear_cross_entropy as linear_cross_entropy
from jaxloss._margin import hinge_embedding_loss as hinge_embedding_loss
from jaxloss._margin import margin_ranking_loss as margin_ranking_loss
from jaxloss._margin import multi_margin_loss as multi_margin_loss
from jaxloss._margin import multilabel_margin_loss as multilabel_margin_loss
from jaxloss._regression import huber_loss as huber_loss
from jaxloss._regression import l1_loss as l1_loss
from jaxloss._regression import mse_loss as mse_loss
from jaxloss._regression import smooth_l1_loss as smooth_l1_loss

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "multilabel_soft_margin_loss",
    "soft_margin_loss",
    "cross_entropy",
    "nll_loss",
    "ctc_loss",
    "gaussian_nll_loss",
    "kl_div",
    "poisson_nll_loss",
    "cosine_embedding_loss",
    "pairwise_distance",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "linear_cross_entropy",
    "hinge_embedding_loss",
    "margin_ranking_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "smooth_l1_loss",
]
