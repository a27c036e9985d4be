"""The probe: one forward of a model, watched, that leaves the model exactly as it was.

``probe(model, x, watched)`` runs ``model(x)`` and reports, for every watched module (the
convs of a CNN, the embedded layers of an eFCN), each call's input shape, output and which
input positions provably hold a padding zero (paper.md §2: the weights reading them are
dead); and what an embedding cannot see: convolutions computed outside a conv module
(``F.conv2d`` on a parameter, ``F.unfold`` + matmul, ``conv.forward(x)``) and conv modules
called that are not in the module tree (a plain list, a stored bound method).

The model runs in eval mode (batch norm on its running statistics, dropout the identity),
without gradients; training flags, buffers and the global RNG are put back afterwards.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .geometry import propagate_alive

CONVS = (nn.Conv1d, nn.Conv2d)
PADS = {  # padding layers whose output liveness we can follow: class -> F.pad mode
    nn.ConstantPad1d: "constant", nn.ConstantPad2d: "constant", nn.ZeroPad1d: "constant", nn.ZeroPad2d: "constant",
    nn.ReflectionPad1d: "reflect", nn.ReflectionPad2d: "reflect",
    nn.ReplicationPad1d: "replicate", nn.ReplicationPad2d: "replicate",
    nn.CircularPad1d: "circular", nn.CircularPad2d: "circular",
}
#: Operators that compute a convolution (or extract its patches, for a matmul to finish).
CONV_OPS = (torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
            torch.conv_transpose3d, torch.convolution, F.unfold)


@dataclass
class Call:
    """One call of a watched module: its input's shape, which positions of its map
    ``(H, W)`` (``(1, L)`` for a 1-d map) are live (None: all of them), and its output."""

    shape: tuple[int, ...]
    alive: torch.Tensor | None
    output: Any


@dataclass
class Probe:
    """What one forward did.  Paths are the model's (``""`` is the root)."""

    calls: dict[int, list[Call]] = field(default_factory=dict)  # id(watched module) -> its calls
    order: list[nn.Module] = field(default_factory=list)  # watched modules, by first call
    stray: list[tuple[nn.Module, tuple]] = field(default_factory=list)  # (conv outside the tree, caller)
    functional: list[tuple[str, tuple]] = field(default_factory=list)  # (operator, caller)
    output: Any = None
    error: Exception | None = None
    failed_in: tuple = ("", None)  # the innermost module running when ``error`` was raised

# A caller is ``(path, module)``: the innermost module running, and its path.


def spatial(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(H, W)`` of a batched map ``(N, C, H, W)``; ``(1, L)`` of ``(N, C, L)``."""
    return (1, shape[-1]) if len(shape) == 3 else (shape[-2], shape[-1])


@contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode without gradients; afterwards its training flags, its
    buffers (values and objects) and the global RNG are as they were."""
    training = [(m, m.training) for m in model.modules()]
    buffers = [(m._buffers, name, b, b.clone()) for m in model.modules() for name, b in m._buffers.items()
               if b is not None]
    cuda = sorted({t.device.index or 0 for t in [*model.parameters(), *model.buffers()] if t.is_cuda})
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            model.eval()
            yield
    finally:
        for m, mode in training:
            m.train(mode)
        with torch.no_grad():
            for owner, name, b, saved in buffers:
                owner[name] = b
                if b.is_meta or not torch.equal(b, saved):  # meta: shapes only, nothing to compare
                    b.copy_(saved)


class _ConvOps(TorchFunctionMode):
    """Records convolution operators not run by a conv module's own forward."""

    def __init__(self, caller):
        super().__init__()
        self.caller = caller  # () -> the caller (path, module) of an operator
        self.seen: list[tuple[str, tuple]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in CONV_OPS:
            caller = self.caller()
            if not isinstance(caller[1], CONVS):
                self.seen.append((f"{getattr(func, '__module__', None) or 'torch'}.{func.__name__}", caller))
        return func(*args, **(kwargs or {}))


def probe(model: nn.Module, x: torch.Tensor, watched: set[int], paths: dict[int, list[str]]) -> Probe:
    """Run ``model(x)`` once (see the module docstring); ``watched``: ids of the modules whose
    calls are recorded; ``paths``: every path of each module of ``model``.  Errors of the
    forward are returned in :attr:`Probe.error`, not raised."""
    result = Probe()
    alive_of: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}  # id(tensor) -> (tensor, version, live mask)
    running: list[nn.Module] = []  # modules whose forward has started and not returned
    thread = threading.get_ident()  # global hooks see every thread's modules: only ours count

    def where(module: nn.Module) -> str:
        return paths[id(module)][0] if id(module) in paths else "<not in the module tree>"

    def caller() -> tuple[str, nn.Module | None]:
        return (where(running[-1]), running[-1]) if running else ("", None)

    def alive(x: torch.Tensor) -> torch.Tensor | None:
        # Provably padding zeros only if the tensor is the padding layer's output, unchanged
        # since: an in-place op in between (even one that maps 0 to 0) makes every position live.
        entry = alive_of.get(id(x))
        return entry[2] if entry is not None and entry[0] is x and entry[1] == x._version else None

    def enter(module, inputs):
        if threading.get_ident() != thread:
            return
        if isinstance(module, CONVS) and id(module) not in paths:
            result.stray.append((module, caller()))
        running.append(module)

    def leave(module, inputs, output):
        if threading.get_ident() == thread:
            running.pop()

    def pad_hook(module, inputs, output):
        mode = PADS[type(module)]
        if mode == "constant" and getattr(module, "value", 0) != 0:
            return  # a non-zero constant is an input like any other: it trains
        x = inputs[0]
        if x.dim() not in (3, 4) or (x.dim() == 3 and len(module.padding) == 4):
            return  # not a batched map, or a 2-d pad that pads the channels too: left as live
        before = alive(x)
        before = torch.ones(spatial(x.shape), dtype=torch.bool) if before is None else before
        pad = tuple(module.padding) + ((0, 0) if len(module.padding) == 2 else ())
        if min(pad) < 0:
            return  # negative padding crops: leave liveness unknown (treated as live)
        alive_of[id(output)] = (output, output._version, propagate_alive(before, pad, mode))

    def watch_input(module, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()))
        if id(module) not in result.calls:
            result.order.append(module)
        # appended after the module's own pre-hooks: this is the input its forward receives
        result.calls.setdefault(id(module), []).append(Call(tuple(x.shape), alive(x), None))

    def watch_output(module, inputs, output):
        result.calls[id(module)][-1].output = output

    modules = list(model.modules())
    handles = [nn.modules.module.register_module_forward_pre_hook(enter),
               nn.modules.module.register_module_forward_hook(leave)]
    handles += [m.register_forward_hook(pad_hook) for m in modules if type(m) in PADS]
    handles += [m.register_forward_pre_hook(watch_input, with_kwargs=True) for m in modules if id(m) in watched]
    handles += [m.register_forward_hook(watch_output) for m in modules if id(m) in watched]
    ops = _ConvOps(caller)
    try:
        with untouched(model), ops:
            result.output = model(x)
    except Exception as err:  # the caller decides how to report it
        result.error, result.failed_in = err, caller()
    finally:
        for h in handles:
            h.remove()
    result.functional = ops.seen
    return result
