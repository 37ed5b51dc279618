"""A backend that is torch.nn.functional under another name, as a faithful port or a compiled copy of
torch's losses would be: it shares torch's recorded deviations from the specs, and only
--inherit-torch-deviations says so."""
import torch.nn.functional as _F

binary_cross_entropy = _F.binary_cross_entropy
kl_div = _F.kl_div
poisson_nll_loss = _F.poisson_nll_loss
soft_margin_loss = _F.soft_margin_loss
