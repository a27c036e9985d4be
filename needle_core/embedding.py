"""``embed``: a CNN becomes its equivalent FCN (eFCN) or locally connected net (eLCN);
``to_cnn``: the way back.

Any module tree works (residual connections included): one probe forward records the input
size of every convolution and which of its input positions are padding zeros, then each
conv module is swapped for its embedded layer.  Everything else is kept as it is.
"""
from __future__ import annotations

import copy
import warnings
from typing import Iterator

import torch
from torch import nn

from .geometry import conv_geometry, propagate_alive, PAD_MODES
from .layers import LAYERS, EmbeddedConv, EmbeddingError

#: Conv-like layers that are linear maps too but not (yet) supported: refused by name.
UNSUPPORTED = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
CONVS = (nn.Conv1d, nn.Conv2d)
PADS = {  # padding layers whose output liveness we can follow: class -> F.pad mode
    nn.ConstantPad1d: "constant", nn.ConstantPad2d: "constant", nn.ZeroPad1d: "constant", nn.ZeroPad2d: "constant",
    nn.ReflectionPad1d: "reflect", nn.ReflectionPad2d: "reflect",
    nn.ReplicationPad1d: "replicate", nn.ReplicationPad2d: "replicate",
    nn.CircularPad1d: "circular", nn.CircularPad2d: "circular",
}


def embedded_layers(model: nn.Module) -> Iterator[tuple[str, EmbeddedConv]]:
    """``(path, layer)`` for every embedded conv of ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, EmbeddedConv):
            yield name, module


def _paths(model: nn.Module) -> dict[int, list[str]]:
    """Every path under which each module appears (a shared module has several)."""
    paths: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(name)
    return paths


def _replace(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``path`` under ``root``; returns the root (``new`` itself for path "")."""
    if not path:
        return new
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)
    return root


def _spatial(shape: torch.Size, dim: int) -> tuple[int, int]:
    return (1, shape[-1]) if dim == 1 else (shape[-2], shape[-1])


def _probe(model: nn.Module, input_shape: tuple[int, ...]) -> dict[int, tuple]:
    """Run ``model`` once on zeros of ``(1, *input_shape)``; for each conv module called,
    return ``(in_hw, upstream_alive)``: its input's spatial size and which positions are
    padding zeros put there by padding layers right before it."""
    paths = _paths(model)
    for name, module in model.named_modules():
        if isinstance(module, UNSUPPORTED):
            raise EmbeddingError(
                f"module '{name}' ({type(module).__name__}) cannot be embedded: only Conv1d and Conv2d are supported. "
                "Replace it by a Conv1d/Conv2d, or embed a sub-module that does not contain it.")
        if isinstance(module, CONVS) and any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
            raise EmbeddingError(f"module '{name}' ({type(module).__name__}) is a lazy conv that was never run: "
                                 "run the model once on a batch before embedding it.")
    seen: dict[int, tuple] = {}
    alive_of: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(tensor) -> (tensor, live mask)

    def pad_hook(module, inputs, output):
        mode = PADS[type(module)]
        if mode == "constant" and getattr(module, "value", 0) != 0:
            return  # a non-zero constant is an input like any other: it trains
        x = inputs[0]
        if x.dim() not in (3, 4) or (x.dim() == 3 and len(module.padding) == 4):
            return  # not a batched map, or a 2-d pad that pads the channels too: left as live
        dim = 1 if x.dim() == 3 else 2  # the map's dims, not the pad's: a 1-d pad also pads (N, C, H, W)
        before = alive_of.get(id(x), (None, torch.ones(_spatial(x.shape, dim), dtype=torch.bool)))[1]
        pad = tuple(module.padding) + ((0, 0) if len(module.padding) == 2 else ())
        if min(pad) < 0:
            return  # negative padding crops: leave liveness unknown (treated as live)
        alive_of[id(output)] = (output, propagate_alive(before, pad, mode))

    def conv_hook(module, inputs):
        x = inputs[0]
        dim = 1 if isinstance(module, nn.Conv1d) else 2
        if x.dim() != dim + 2:
            raise EmbeddingError(
                f"module '{paths[id(module)][0]}' ({type(module).__name__}) received an input of shape {tuple(x.shape)}; "
                f"embedding needs batched inputs (N, C{', L' if dim == 1 else ', H, W'}). Check input_shape.")
        in_hw = _spatial(x.shape, dim)
        upstream = alive_of.get(id(x), (None, None))[1]
        if id(module) in seen:
            before_hw, before = seen[id(module)]
            if before_hw != in_hw:
                raise EmbeddingError(
                    f"module '{paths[id(module)][0]}' ({type(module).__name__}) is called on inputs of sizes "
                    f"{before_hw} and {in_hw}: one FC layer cannot represent both. Use a separate conv per call.")
            # a shared conv: a position is dead only if it is a padding zero on every call
            upstream = None if before is None or upstream is None else before | upstream.reshape(before.shape)
        seen[id(module)] = (in_hw, upstream)

    running: list[nn.Module] = []  # modules whose forward has started and not returned

    def enter_hook(module, inputs):
        running.append(module)

    def leave_hook(module, inputs, output):
        running.pop()

    handles = [m.register_forward_hook(pad_hook) for m in model.modules() if type(m) in PADS]
    handles += [m.register_forward_pre_hook(conv_hook) for m in model.modules() if isinstance(m, CONVS)]
    handles += [m.register_forward_pre_hook(enter_hook) for m in model.modules()]
    handles += [m.register_forward_hook(leave_hook) for m in model.modules()]
    training = {m: m.training for m in model.modules()}
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else "cpu"
    try:
        model.eval()  # batch norm cannot run train-mode statistics on a batch of one
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=dtype, device=device))
    except EmbeddingError:
        raise
    except Exception as err:  # the model's own error, re-raised with what to check
        where = ""
        if running:  # the innermost module still running is the one that failed
            failed = running[-1]
            where = f" in module '{paths[id(failed)][0] or '<root>'}' ({type(failed).__name__})"
        raise EmbeddingError(
            f"the model's forward failed{where} on an input of shape (1, {', '.join(map(str, input_shape))}): "
            f"{type(err).__name__}: {err}. input_shape is one example without the batch dimension, "
            "e.g. (3, 32, 32) for CIFAR-10.") from err
    finally:
        for h in handles:
            h.remove()
        for m, mode in training.items():
            m.train(mode)
    return seen


def embed(model: nn.Module, input_shape: tuple[int, ...], kind: str = "fc") -> nn.Module:
    """A copy of ``model`` computing the same function, every ``Conv1d``/``Conv2d`` replaced
    by its eFCN layer (``kind="fc"``, a dense matrix) or eLCN layer (``kind="lc"``).

    ``input_shape`` is one input without the batch dimension, e.g. ``(3, 32, 32)``: the
    dense matrix of a conv depends on the size of the map it is applied to.  ``model`` is
    not modified.  Raises :class:`EmbeddingError` for anything that cannot be embedded.
    """
    if kind not in LAYERS:
        raise ValueError(f"kind={kind!r} is not an embedding: use 'fc' (eFCN) or 'lc' (eLCN).")
    input_shape = tuple(int(s) for s in input_shape)
    seen = _probe(model, input_shape)
    new = copy.deepcopy(model)  # same tree, so the original's paths address the copy too
    old_paths = _paths(model)
    for module in model.modules():
        if not isinstance(module, CONVS):
            continue
        if id(module) not in seen:
            warnings.warn(f"conv '{old_paths[id(module)][0]}' is never called by forward on input_shape "
                          f"{input_shape}: left as a conv.", stacklevel=2)
            continue
        in_hw, upstream = seen[id(module)]
        geometry = conv_geometry(module, in_hw, upstream)
        if min(geometry.out_hw) < 1:
            raise EmbeddingError(f"module '{old_paths[id(module)][0]}': input {in_hw} is smaller than the kernel.")
        layer = LAYERS[kind].from_conv(module, geometry, old_paths[id(module)][0])
        for path in old_paths[id(module)]:
            new = _replace(new, path, layer)
    return new


def to_cnn(model: nn.Module) -> nn.Module:
    """Collapse an eFCN or eLCN back into a CNN: each embedded layer becomes a conv of its
    original type whose kernel is the projection of the layer onto the CNN subspace
    (:func:`needle_core.project`).  ``to_cnn(embed(cnn))`` computes exactly ``cnn``."""
    from .subspace import kernel_of  # the projection lives with the geometry

    new = copy.deepcopy(model)
    paths = _paths(new)
    for _, layer in list(embedded_layers(new)):
        kernel, bias = kernel_of(layer)
        conv = layer.make_conv()
        with torch.no_grad():
            conv.weight.copy_(kernel)
            if conv.bias is not None:
                conv.bias.copy_(bias)
        for path in paths[id(layer)]:
            new = _replace(new, path, conv)
    return new
