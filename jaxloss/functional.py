"""PyTorch's `torch.nn.functional` losses as pure JAX functions, with torch's values and gradients.

Same names, argument names, order and defaults as torch 2.13, without the deprecated `size_average` and
`reduce`. Because those are gone, arguments after `weight` in `cross_entropy`/`nll_loss` and after `full` in
`poisson_nll_loss` sit one or two places earlier than in torch: pass them by keyword.
"""

from jaxloss._regression import huber_loss as huber_loss
from jaxloss._regression import l1_loss as l1_loss
from jaxloss._regression import mse_loss as mse_loss
from jaxloss._regression import smooth_l1_loss as smooth_l1_loss
