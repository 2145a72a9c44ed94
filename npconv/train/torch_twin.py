"""The same model in PyTorch, with the same weights: for the parity test and the epoch benchmark.

:func:`torch_twin` builds the network's ``torch.nn`` modules with
:func:`npconv.network_torch.build_module` (one module per row, a separable
row as ``Sequential(depthwise, pointwise)``) and copies every parameter and
batch-norm buffer of a :class:`~npconv.train.model.Model` into it: the two
list their parameters in the same order, which is checked shape by shape.
:func:`torch_optimizer` makes the ``torch.optim`` twin of an npconv optimizer.

Imports PyTorch: import it only where PyTorch is wanted.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from npconv.network_torch import build_module
from npconv.train.model import Model
from npconv.train.optimizers import SGD, Adam, Optimizer

_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_twin(model: Model) -> nn.Module:
    """``model``'s network as ``torch.nn`` modules holding copies of ``model``'s weights and buffers."""
    module = build_module(model.network).to(_DTYPES[model.dtype])
    ours = model.parameters()
    theirs = list(module.parameters())
    if [p.shape for p in ours] != [tuple(t.shape) for t in theirs]:
        raise ValueError(f"parameter shapes differ: npconv {[p.shape for p in ours]}, "
                         f"torch {[tuple(t.shape) for t in theirs]}")
    buffers = [b for name, b in module.named_buffers() if not name.endswith("num_batches_tracked")]
    with torch.no_grad():
        for p, t in zip(ours, theirs, strict=True):
            t.copy_(torch.from_numpy(np.ascontiguousarray(p.value)))
        for value, t in zip(model.buffers().values(), buffers, strict=True):
            t.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def torch_optimizer(optimizer: Optimizer, module: nn.Module) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer with ``optimizer``'s settings over ``module``'s parameters."""
    if isinstance(optimizer, SGD):
        return torch.optim.SGD(module.parameters(), lr=optimizer.lr, momentum=optimizer.momentum,
                               weight_decay=optimizer.weight_decay)
    if isinstance(optimizer, Adam):
        return torch.optim.Adam(module.parameters(), lr=optimizer.lr, betas=optimizer.betas, eps=optimizer.eps,
                                weight_decay=optimizer.weight_decay, foreach=False)
    raise TypeError(f"no torch twin for {type(optimizer).__name__}")


def torch_step(module: nn.Module, optimizer: torch.optim.Optimizer, x: np.ndarray, y: np.ndarray) -> float:
    """One training step of the torch twin on a batch; its loss (before the update)."""
    logits = module(torch.from_numpy(x))
    loss = nn.functional.cross_entropy(logits, torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
