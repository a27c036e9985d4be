"""The switch: a CNN becomes its eFCN (or eLCN) in the middle of training.

One operation maps the model *and* the optimiser state through the same linear embedding,
so that momentum buffers (and any schedule built on the optimiser) simply continue.  With
plain SGD there is no state and the switch is the embedding alone.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from .embedding import embed, embedded_layers


def switch(model: nn.Module, optimizer: torch.optim.Optimizer, input_shape: tuple[int, ...], kind: str = "fc",
           lr: float | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
    """``(embedded model, its optimiser)`` continuing ``(model, optimizer)`` in FC (or LC) space.

    The new optimiser has the same class and hyper-parameters (``lr`` replaces the learning
    rate when given); each per-parameter state tensor of a conv weight or bias (e.g. SGD's
    ``momentum_buffer``) is embedded exactly as the parameter itself.  Parameter names are
    unchanged by :func:`needle_core.embed`, which is how states are matched.
    """
    if len(optimizer.param_groups) != 1:
        raise ValueError("switch supports one parameter group; build the optimiser from model.parameters().")
    new = embed(model, input_shape, kind)
    group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    if lr is not None:
        group["lr"] = lr
    # The constructor takes the hyper-parameters; keys added later (a scheduler's initial_lr)
    # are copied into the group as they are.
    accepted = inspect.signature(type(optimizer)).parameters
    new_optimizer = type(optimizer)(new.parameters(), **{k: v for k, v in group.items() if k in accepted})
    new_optimizer.param_groups[0].update(group)
    new_params = dict(new.named_parameters())
    layers = dict(embedded_layers(new))
    for name, param in model.named_parameters():
        state = optimizer.state.get(param)
        if not state:
            continue
        path, _, which = name.rpartition(".")
        layer = layers.get(path)
        mapped = {}
        for key, value in state.items():
            if torch.is_tensor(value) and layer is not None and value.shape == param.shape:
                embed_state = layer.embed_kernel if which == "weight" else layer.embed_bias
                mapped[key] = embed_state(layer.geometry, value)
            else:
                mapped[key] = value.clone() if torch.is_tensor(value) else value
        new_optimizer.state[new_params[name]] = mapped
    return new, new_optimizer
