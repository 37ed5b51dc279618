"""A backend that is torch.nn.functional under another name, as a faithful port or a compiled copy of
torch's losses would be: it shares torch's recorded deviations from the specs, and only
--inherit-torch-deviations says so."""
from torch.nn.functional import (binary_cross_entropy, kl_div, poisson_nll_loss,  # noqa: F401
                                 soft_margin_loss)
