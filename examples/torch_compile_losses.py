"""torch.compile of torch.nn.functional's losses, as a backend: it checks the kernels that the
compiler generates (inductor by default) against the specs.

    PYTHONPATH=examples loss-conformance run --backend torch_compile_losses --inherit-torch-deviations \\
        --loss mse_loss cross_entropy ...

``--inherit-torch-deviations`` grants the compiled functions torch's own recorded deviations, since
they run torch's code. Shapes are compiled dynamically and the recompile limits raised, so every
call is compiled; a fallback to eager would be reported all the same. ``LOSS_CONFORMANCE_COMPILER`` picks another
compiler backend (``aot_eager`` checks Dynamo and AOTAutograd without inductor's code generation).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as _F

_COMPILER = os.environ.get("LOSS_CONFORMANCE_COMPILER", "inductor")
# A run varies ranks, dtypes and keywords, each a recompilation that dynamic shapes do not spare:
# past the default limit (8 per function) Dynamo would run the rest eagerly.
torch._dynamo.config.recompile_limit = 1024
torch._dynamo.config.accumulated_recompile_limit = 8192

_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss", "cross_entropy",
           "ctc_loss", "gaussian_nll_loss", "hinge_embedding_loss", "huber_loss", "kl_div", "l1_loss",
           "margin_ranking_loss", "mse_loss", "multi_margin_loss", "multilabel_margin_loss",
           "multilabel_soft_margin_loss", "nll_loss", "poisson_nll_loss", "smooth_l1_loss", "soft_margin_loss",
           "triplet_margin_loss", "triplet_margin_with_distance_loss")

globals().update({name: torch.compile(getattr(_F, name), backend=_COMPILER, dynamic=True) for name in _LOSSES})
