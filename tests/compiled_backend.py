"""mse_loss under torch.compile with Dynamo's recompile limit at 2 and no dynamic shapes: from the
third shape on, Dynamo silently runs it eagerly. (The "eager" compiler backend keeps the test fast;
the fallback is Dynamo's, whichever compiler follows it.)"""
import torch
import torch.nn.functional as _F

torch._dynamo.config.recompile_limit = 2
mse_loss = torch.compile(_F.mse_loss, backend="eager", dynamic=False)
