"""``embed``: a CNN becomes its equivalent FCN (eFCN) or locally connected net (eLCN);
``to_cnn``: the way back.

Any module tree works (residual connections included): a probe forward
(:mod:`needle_core.probe`) records the input size of every convolution and which of its
input positions are padding zeros, then each conv module is swapped for its embedded layer.
Everything else is kept as it is.

``embed`` is never silently wrong; it returns a model only after proving it:

* **What is embedded.** ``nn.Conv1d``/``nn.Conv2d`` modules, and subclasses that keep their
  ``forward`` and ``_conv_forward``.  Refused by name, before the model runs: conv
  subclasses with their own forward, weights that are not a plain ``Parameter``
  (parametrizations, ``spectral_norm``, ``weight_norm``), quantisation wrappers and
  observers, scripted or compiled models, ``Conv3d`` and transposed convs, already embedded
  models.  Refused by the probe: convolutions that are not conv modules (``F.conv2d`` on a
  parameter, ``F.unfold`` + matmul, ``conv.forward(x)``) and conv modules called from
  outside the module tree (a plain list, a stored bound method).
* **The proof.** The embedded model is run on the same random inputs of ``input_shape`` as
  the model (2 of them, from a fixed-seed local generator: the global RNG is not touched):
  every embedded layer must be called and agree with its conv, no conv may still be called,
  and the outputs must agree, to a tolerance by dtype (:data:`TOLERANCE`).
* **The input model is never modified**: it runs in eval mode without gradients, and its
  training flags, buffers and the global RNG are restored.
* **Hooks** (forward and backward) of a conv are carried over to its embedded layer, which
  receives and returns the same tensors; the proof catches a hook that depends on the conv
  itself.  State-dict hooks on a conv are refused.
* ``requires_grad`` of each conv parameter is kept (a frozen conv gives a frozen layer).
* **Tied weights are refused**: two conv modules sharing a ``Parameter`` would need one
  decision about which copies of which matrix stay tied.  One conv module called twice is
  one shared embedded layer, and stays shared.
* **Dead weights** are those that provably read a padding zero: internal zero padding, or a
  zero-padding layer whose output reaches the conv unchanged (no in-place op in between).
* Embedded layers refuse inputs of any other size than the one they were embedded for.
* **Too big is refused before anything is allocated**: the size of every embedded layer
  follows from the probe's shapes alone; when the embedding would not fit in the memory
  available (:func:`available_memory`), :class:`EmbeddingError` names the total, the largest
  layers and what to do.  :func:`embedding_sizes` (``python -m needle_core sizes``) asks first.
"""
from __future__ import annotations

import copy
import math
import operator
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_flatten

from .geometry import conv_geometry
from .layers import LAYERS, EmbeddedConv, EmbeddingError, LCConv
from .probe import CONVS, Probe, probe, spatial

__all__ = ["EmbeddingError", "embed", "embedded_layers", "embedding_sizes", "available_memory", "to_cnn",
           "TOLERANCE"]

#: Conv-like layers that are linear maps too but not (yet) supported: refused by name.
UNSUPPORTED = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
#: Where quantisation modules live: a fake-quantised or quantised conv is another function.
QUANTISATION = ("torch.ao.", "torch.nn.qat", "torch.nn.quantized", "torch.nn.intrinsic")
#: Largest relative difference (to the largest output) the proof accepts, by dtype.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
CHECK_BATCH = 2  # random inputs the proof runs: enough to mix samples, cheap on a 46M-weight eFCN
FORWARD_HOOKS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs",
                 "_forward_hooks_always_called")
HOOKS = FORWARD_HOOKS + ("_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook")
#: Fraction of the available memory an embedding may take (the rest: the proof, the caller).
MEMORY_FRACTION = 0.9
STATE_DICT_HOOKS = ("_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                    "_load_state_dict_post_hooks")


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


def _named(path: str, module: nn.Module) -> str:
    return f"module '{path or '<root>'}' ({type(module).__name__})"


def _carry(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` the forward and backward hooks of ``source`` (they see the same
    input and output tensors), its training flag and the ``requires_grad`` of its parameters."""
    target.train(source.training)
    for attr in HOOKS:
        setattr(target, attr, getattr(source, attr))
    for name, param in target.named_parameters(recurse=False):
        param.requires_grad_(getattr(source, name).requires_grad)


# -- refused before the model runs -----------------------------------------------------------

def _refusal(module: nn.Module) -> str | None:
    """Why ``module`` cannot be part of a model to embed (and what to do), or None."""
    if isinstance(module, torch.jit.ScriptModule):
        return ("is scripted: scripted models cannot be embedded. Embed the Python nn.Module before "
                "torch.jit.script or torch.jit.trace (a scripted model's convs are not nn.Conv2d modules).")
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # loaded if anything was ever compiled
    if eval_frame is not None and isinstance(module, eval_frame.OptimizedModule):
        return ("is a torch.compile wrapper, whose forward does not run its modules' hooks: embed `model._orig_mod`, "
                "the module it compiled, then compile the embedded model if you want it compiled.")
    if isinstance(module, EmbeddedConv):
        return (f"is already embedded (kind '{module.kind}'). To embed it with another kind, go back first: "
                "embed(needle_core.to_cnn(model), input_shape, kind).")
    quantisation = (torch.ao.quantization.ObserverBase, torch.ao.quantization.FakeQuantizeBase)
    if type(module).__module__.startswith(QUANTISATION) or isinstance(module, quantisation):
        return ("is a quantisation module (observer, fake-quant, QAT or quantised layer): a (fake-)quantised conv "
                "is not the linear map of its float weights, and running it would update its observers. Embed the "
                "float model, before torch.ao.quantization.prepare/prepare_qat/convert.")
    if isinstance(module, UNSUPPORTED):
        return ("only Conv1d and Conv2d are supported. Replace it by a Conv1d/Conv2d, or embed a sub-module that "
                "does not contain it.")
    if not isinstance(module, CONVS):
        return None
    base = nn.Conv1d if isinstance(module, nn.Conv1d) else nn.Conv2d
    if parametrize.is_parametrized(module):
        return (f"has parametrizations ({', '.join(module.parametrizations)}): the embedded layer would freeze one "
                "value of them. Remove them first (torch.nn.utils.parametrize.remove_parametrizations(module, "
                "'weight')), or embed a sub-module without it.")
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
        return "is a lazy conv that was never run: run the model once on a batch before embedding it."
    if not isinstance(module._parameters.get("weight"), nn.Parameter):
        return ("has a weight that is not a Parameter but computed before each forward (torch.nn.utils.spectral_norm "
                "or weight_norm): the embedded layer would freeze one value of it. Remove the reparametrisation "
                "(torch.nn.utils.remove_spectral_norm / remove_weight_norm) first.")
    overrides = [m for m in ("forward", "_conv_forward") if getattr(type(module), m) is not getattr(base, m)]
    if overrides:
        return (f"overrides {' and '.join(overrides)}: it may compute something else than nn.{base.__name__} does "
                f"with its weight (weight standardisation, padding in forward, quantisation), which embed cannot "
                f"know. Replace it by an nn.{base.__name__} holding the weight its forward uses (with explicit "
                f"padding layers), or embed a sub-module without it.")
    if any(getattr(module, attr) for attr in STATE_DICT_HOOKS):
        return (f"has state-dict hooks: they expect a {type(module).__name__}'s state, not an embedded layer's. "
                "Remove them, or embed a sub-module without it.")
    return None


def _refuse(model: nn.Module) -> None:
    """Raise :class:`EmbeddingError` for the first module of ``model`` that cannot be embedded,
    and for conv parameters shared between modules; before anything of the model runs."""
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for path, module in model.named_modules():
        reason = _refusal(module)
        if reason is not None:
            raise EmbeddingError(f"{_named(path, module)} cannot be embedded: it {reason}")
        for name, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append((path, module, name))
    for shared in owners.values():
        convs = [(path, m, name) for path, m, name in shared if isinstance(m, CONVS)]
        if len(shared) > 1 and convs:
            path, m, name = convs[0]
            others = ", ".join(f"'{p}.{n}'" for p, _, n in shared if p != path)
            raise EmbeddingError(
                f"{_named(path, m)} cannot be embedded: its {name} is the same Parameter as {others}. Embedding frees "
                "every copy of a weight, so a tie between two modules cannot be kept. Call one conv module twice "
                "instead (it is embedded as one shared layer), or untie them: "
                f"other.{name} = nn.Parameter(conv.{name}.detach().clone()).")


def _input_shape(input_shape) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints; anything else raises (no truncation)."""
    try:
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        shape = ()
    if not shape or min(shape) < 1:
        raise EmbeddingError(f"input_shape={input_shape!r} must be a sequence of positive ints: one input without "
                             "the batch dimension, e.g. (3, 32, 32) for CIFAR-10.")
    return shape


def _check_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The proof's inputs ``(CHECK_BATCH, *input_shape)`` in the model's dtype and device,
    drawn from a fixed-seed local generator (never the global RNG: runs stay bit-identical)."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    device = param.device if param is not None else torch.device("cpu")
    if device.type == "meta":  # shapes only (parameter counts): the proof checks structure, not values
        return torch.empty((CHECK_BATCH, *input_shape), dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    return torch.randn((CHECK_BATCH, *input_shape), generator=generator, dtype=dtype, device=device)


def _failure(run: Probe, what: str, x: torch.Tensor, hint: str) -> EmbeddingError:
    path, module = run.failed_in
    where = f" in {_named(path, module)}" if module is not None else ""
    return EmbeddingError(f"{what} forward failed{where} on an input of shape ({', '.join(map(str, x.shape))}): "
                          f"{type(run.error).__name__}: {run.error}. {hint}")


def _probe_model(model: nn.Module, x: torch.Tensor, paths: dict[int, list[str]]) -> Probe:
    """The probe of the model to embed, with everything it must refuse raised."""
    run = probe(model, x, {id(m) for m in model.modules() if isinstance(m, CONVS)}, paths)
    if run.stray:
        module, caller = run.stray[0]
        raise EmbeddingError(
            f"a {type(module).__name__} called by {_named(*caller)} is not a registered submodule (it is held in a "
            "plain list or dict, or another object): embed cannot see it, so it would stay a conv. Register it "
            "(nn.ModuleList, nn.ModuleDict, or an attribute of an nn.Module).")
    if run.functional:
        op, caller = run.functional[0]
        raise EmbeddingError(
            f"{_named(*caller)} computes a convolution with {op} outside a conv module (F.conv2d on a parameter, "
            "F.unfold + matmul, or calling conv.forward(x) directly): embed only replaces conv modules, so this one "
            "would stay a conv. Make it an nn.Conv1d/nn.Conv2d submodule called as self.conv(x).")
    if run.error is not None:
        raise _failure(run, "the model's", x, "input_shape is one example without the batch dimension, e.g. "
                                             "(3, 32, 32) for CIFAR-10.") from run.error
    for module in run.order:
        dim = 1 if isinstance(module, nn.Conv1d) else 2
        calls = run.calls[id(module)]
        bad = next((c.shape for c in calls if len(c.shape) != dim + 2), None)
        if bad is not None:
            raise EmbeddingError(
                f"{_named(paths[id(module)][0], module)} received an input of shape {bad}; embedding needs batched "
                f"inputs (N, C{', L' if dim == 1 else ', H, W'}). Check input_shape.")
        first = spatial(calls[0].shape)
        other = next((spatial(c.shape) for c in calls if spatial(c.shape) != first), None)
        if other is not None:
            raise EmbeddingError(
                f"{_named(paths[id(module)][0], module)} is called on inputs of sizes {first} and {other}: one FC "
                "layer cannot represent both. Use a separate conv per call.")
    return run


def _upstream_alive(calls) -> torch.Tensor | None:
    """Live positions of a conv's input over all its calls: a position is dead only if it
    is a padding zero on every call (a shared conv may read padding on one path only)."""
    alive = calls[0].alive
    for call in calls[1:]:
        alive = None if alive is None or call.alive is None else alive | call.alive
    return alive


def _relative_error(got, ref) -> float:
    """Largest difference between two (nests of) tensors, relative to the largest value of
    ``ref``; infinite when their structures, shapes or non-float values differ."""
    got, got_spec = tree_flatten(got)
    ref, ref_spec = tree_flatten(ref)
    if got_spec != ref_spec:
        return math.inf
    worst = 0.0
    for g, r in zip(got, ref):
        if not (torch.is_tensor(g) and torch.is_tensor(r)) or g.shape != r.shape or not r.is_floating_point():
            if not (torch.equal(g, r) if torch.is_tensor(g) and torch.is_tensor(r) else g == r):
                return math.inf
            continue
        if r.numel() == 0 or r.is_meta:
            continue
        g, r = g.double(), r.double()
        diff = (g - r).abs().masked_fill(g.isnan() & r.isnan(), 0.0)  # NaN on both sides agrees
        scale = float(r.nan_to_num(0.0, 0.0, 0.0).abs().max())
        err = float(diff.max()) / max(scale, torch.finfo(torch.float64).tiny)
        worst = max(worst, err if not math.isnan(err) else math.inf)  # NaN on one side only
    return worst


def _disagreement(got, ref, dtype: torch.dtype) -> str | None:
    """How ``got`` differs from ``ref`` beyond the tolerance for ``dtype``, or None."""
    err, tol = _relative_error(got, ref), TOLERANCE.get(dtype, 1e-2)
    return f"by {err:.2g} (relative to the largest output; tolerance {tol:.0g} in {dtype})" if err > tol else None


def _prove(model: nn.Module, new: nn.Module, x: torch.Tensor, before: Probe, paths: dict[int, list[str]],
           layer_of: dict[int, EmbeddedConv], stale: dict[int, nn.Module]) -> None:
    """Run ``new`` on the probe's inputs and raise :class:`EmbeddingError` unless it
    computes what ``model`` did (see the module docstring).  ``layer_of``: id of each conv
    of ``model`` -> its embedded layer; ``stale``: id of each conv's copy in ``new`` -> the conv."""
    after = probe(new, x, {id(layer) for layer in layer_of.values()}, _paths(new))
    if after.stray:
        conv = stale[id(after.stray[0][0])]
        raise EmbeddingError(
            f"{_named(paths[id(conv)][0], conv)} is still called by the embedded model's forward: forward reaches it "
            "through a reference outside the module tree (a plain list or dict, a stored bound method such as "
            "self.f = self.conv), so its embedded layer would never be used or trained. Call it as a registered "
            "submodule (self.conv(x), nn.ModuleList, nn.ModuleDict).")
    if after.error is not None:
        raise _failure(after, "the embedded model's", x, "The model's own forward ran on the same input, so it "
                       "depends on its convs other than through calling them (their attributes, their type), or a "
                       "hook carried over to an embedded layer reads the conv itself.") from after.error
    for conv in before.order:
        path, calls, got = paths[id(conv)][0], before.calls[id(conv)], after.calls.get(id(layer_of[id(conv)]), [])
        if len(got) != len(calls):
            raise EmbeddingError(
                f"{_named(path, conv)} is called {len(calls)} time(s) by the model's forward, its embedded layer "
                f"{len(got)} time(s) by the embedded model's: forward does not reach the layer that replaced the conv "
                "(a stored reference to the conv, or a branch on the conv's type). Call it as a registered "
                "submodule, self.conv(x).")
        for ref, call in zip(calls, got):
            how = _disagreement(call.output, ref.output, x.dtype)
            if how is not None:
                hooks = [getattr(h, "__name__", repr(h)) for attr in FORWARD_HOOKS
                         for h in getattr(conv, attr).values() if callable(h)]
                raise EmbeddingError(
                    f"{_named(path, conv)}: its embedded layer's output differs from the conv's {how} on random "
                    "inputs of input_shape." + (f" Its hooks, carried over to the embedded layer, may read the conv "
                                                f"itself (weight, padding): {', '.join(hooks)}. Remove them before "
                                                "embedding." if hooks else ""))
    how = _disagreement(after.output, before.output, x.dtype)
    if how is not None:
        raise EmbeddingError(
            f"{_named('', model)}: the embedded model's output differs from the model's {how} although every "
            "embedded layer agrees with its conv: the model's forward depends on its convs other than through "
            "calling them (it reads a conv's weight or attributes, or checks its type). Embed a sub-module whose "
            "forward only calls its convs.")


# -- sizes, and the refusal of what would not fit ---------------------------------------------

@dataclass(frozen=True)
class LayerSize:
    """One conv of a model to embed: where it is, its map sizes, and the bytes of its
    eFCN matrix (``dense``) and eLCN weights (``local``) in the model's dtype."""

    path: str
    type: str
    maps: str  # "C x H x W -> O x Ho x Wo" (padded input)
    dense: int
    local: int


def _geometries(model: nn.Module, input_shape: tuple[int, ...], before: Probe, paths: dict[int, list[str]],
                stacklevel: int = 3) -> dict[int, object]:
    """id of each conv called by the probe -> its ConvGeometry (shapes only, nothing allocated)."""
    geometries = {}
    for module in model.modules():
        if not isinstance(module, CONVS):
            continue
        if id(module) not in before.calls:
            warnings.warn(f"conv '{paths[id(module)][0]}' is never called by forward on input_shape "
                          f"{input_shape}: left as a conv.", stacklevel=stacklevel)
            continue
        calls = before.calls[id(module)]
        geometry = conv_geometry(module, spatial(calls[0].shape), _upstream_alive(calls))
        if min(geometry.out_hw) < 1:
            raise EmbeddingError(f"{_named(paths[id(module)][0], module)}: input {geometry.in_hw} is smaller than "
                                 "the kernel.")
        geometries[id(module)] = geometry
    return geometries


def _sizes(model: nn.Module, geometries: dict[int, object], paths: dict[int, list[str]],
           itemsize: int) -> list[LayerSize]:
    sizes = []
    for module in model.modules():
        g = geometries.get(id(module))
        if g is None:
            continue
        (hp, wp), (ho, wo) = g.padded_hw, g.out_hw
        maps = (f"{g.in_channels}x{hp}x{wp} -> {g.out_channels}x{ho}x{wo}" if g.dim == 2
                else f"{g.in_channels}x{wp} -> {g.out_channels}x{wo}")
        local = math.prod(g.band_shape) + (g.out_features if module.bias is not None else 0)
        dense = g.out_features * g.in_features + (g.out_features if module.bias is not None else 0)
        sizes.append(LayerSize(paths[id(module)][0], type(module).__name__, maps, dense * itemsize, local * itemsize))
    return sizes


def embedding_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerSize]:
    """The bytes every conv of ``model`` takes once embedded on ``input_shape``, in module
    order, without embedding anything: one probe forward of ``model`` on 2 inputs (its
    activations are all it allocates).  See :func:`format_sizes` for a table."""
    input_shape = _input_shape(input_shape)
    _refuse(model)
    paths = _paths(model)
    x = _check_input(model, input_shape)
    before = _probe_model(model, x, paths)
    return _sizes(model, _geometries(model, input_shape, before, paths), paths, x.element_size())


def _bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def format_sizes(sizes: list[LayerSize], available: tuple[int, str] | None = None) -> str:
    """A table of :func:`embedding_sizes`: one line per conv, the totals, the memory available."""
    width = max([len(s.path) for s in sizes] + [5])
    lines = [f"{'layer':<{width}}  {'type':<7} {'maps (padded input -> output)':<32}{'eFCN':>11}{'eLCN':>11}"]
    lines += [f"{s.path:<{width}}  {s.type:<7} {s.maps:<32}{_bytes(s.dense):>11}{_bytes(s.local):>11}" for s in sizes]
    dense, local = sum(s.dense for s in sizes), sum(s.local for s in sizes)
    lines.append(f"{'total':<{width}}  {'':<7} {'':<32}{_bytes(dense):>11}{_bytes(local):>11}")
    if sizes:
        lines.append(f"the eLCN's forward also builds each layer's dense matrix (largest {_bytes(max(s.dense for s in sizes))})")
    if available is not None:
        lines.append(f"memory available: {_bytes(available[0])} ({available[1]}); embed uses at most "
                     f"{MEMORY_FRACTION:.0%} of it")
    return "\n".join(lines)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit (a container's) still allows, or None without one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """``(bytes, where the number comes from)`` of memory available for new tensors on
    ``device``, or None where it is unknown (the meta device, other backends)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, f"torch.cuda.mem_get_info on {device}, plus the caching allocator's free blocks"
    if device.type != "cpu":
        return None
    found = []
    meminfo = _meminfo_available()
    if meminfo is not None:
        found.append((meminfo, "MemAvailable in /proc/meminfo"))
    cgroup = _cgroup_available()
    if cgroup is not None:
        found.append((cgroup, "the cgroup's memory.max less memory.current"))
    if not found:
        try:
            import psutil
        except ImportError:
            return None
        found.append((psutil.virtual_memory().available, "psutil.virtual_memory().available"))
    return min(found)


def _check_memory(model: nn.Module, sizes: list[LayerSize], kind: str, device: torch.device,
                  input_shape: tuple[int, ...], itemsize: int) -> None:
    """Raise :class:`EmbeddingError` if the embedding would not fit in the memory available:
    before anything of it is allocated."""
    available = available_memory(device)
    if available is None or not sizes:
        return
    largest = max(s.dense for s in sizes)
    # fc: every dense matrix at once; lc: its weights, plus one dense matrix at a time (the proof)
    need = sum(s.dense for s in sizes) if kind == "fc" else sum(s.local for s in sizes) + largest
    need += sum(p.numel() for p in model.parameters()) * itemsize  # the copy of everything else
    limit = int(available[0] * MEMORY_FRACTION)
    if need <= limit:
        return
    top = sorted(sizes, key=lambda s: -s.dense)[:3]
    layers = "; ".join(f"'{s.path}' ({s.type} {s.maps}) {_bytes(s.dense)}" for s in top)
    lc_need = sum(s.local for s in sizes) + largest
    what = [f"embed on a smaller input_shape (a layer's matrix grows with the product of its input and output "
            f"areas: halving {input_shape[1:] or input_shape} divides it by about 16)",
            "embed a sub-module that holds the convs you study (e.g. embed(model.layer4, its input's shape))"]
    if kind == "fc" and lc_need <= limit:
        what.insert(0, f"kind='lc' (an eLCN: {_bytes(sum(s.local for s in sizes))} of weights; its forward still "
                       f"builds each layer's dense matrix, the largest {_bytes(largest)}, one at a time)")
    name = "an eFCN (kind='fc')" if kind == "fc" else "an eLCN (kind='lc')"
    raise EmbeddingError(
        f"{_named('', model)} is too big to embed as {name} on input_shape {input_shape}: it needs "
        f"{_bytes(need)} and {_bytes(available[0])} of memory is available ({available[1]}; embed takes at most "
        f"{MEMORY_FRACTION:.0%} of it). Refused before allocating anything. Largest layers: {layers}. "
        f"What to do: {'; or '.join(what)}. Ask first with needle_core.embedding_sizes(model, input_shape) or "
        f"python -m needle_core sizes.")


def embed(model: nn.Module, input_shape: tuple[int, ...], kind: str = "fc") -> nn.Module:
    """A copy of ``model`` computing the same function, every ``Conv1d``/``Conv2d`` replaced
    by its eFCN layer (``kind="fc"``, a dense matrix) or eLCN layer (``kind="lc"``).

    ``input_shape`` is one input without the batch dimension, e.g. ``(3, 32, 32)``: the
    dense matrix of a conv depends on the size of the map it is applied to.  ``model`` is
    not modified.  The result is proved equal to ``model`` on random inputs before it is
    returned (see the module docstring); anything that cannot be embedded, or that would
    not be exact, raises :class:`EmbeddingError` naming the module and the fix.
    """
    if kind not in LAYERS:
        raise EmbeddingError(f"kind={kind!r} is not an embedding: use 'fc' (eFCN) or 'lc' (eLCN).")
    input_shape = _input_shape(input_shape)
    _refuse(model)
    paths = _paths(model)
    x = _check_input(model, input_shape)
    before = _probe_model(model, x, paths)
    geometries = _geometries(model, input_shape, before, paths)
    if not geometries:
        raise EmbeddingError(f"{_named('', model)} has no Conv1d/Conv2d module called by its forward on input_shape "
                             f"{input_shape}: there is nothing to embed.")
    _check_memory(model, _sizes(model, geometries, paths, x.element_size()), kind, x.device, input_shape,
                  x.element_size())
    memo: dict[int, object] = {}
    new = copy.deepcopy(model, memo)  # same tree, so the original's paths address the copy too
    layer_of: dict[int, EmbeddedConv] = {}
    for module in model.modules():
        geometry = geometries.get(id(module))
        if geometry is None:
            continue
        layer = LAYERS[kind].from_conv(module, geometry, paths[id(module)][0])
        _carry(memo[id(module)], layer)
        layer_of[id(module)] = layer
        for path in paths[id(module)]:
            new = _replace(new, path, layer)
    stale = {id(memo[id(conv)]): conv for conv in before.order}
    lcs = [layer for layer in layer_of.values() if isinstance(layer, LCConv)]
    for layer in lcs:
        layer.cache = False  # the proof holds one eLCN matrix at a time, as _check_memory counts
    try:
        _prove(model, new, x, before, paths, layer_of, stale)
    finally:
        for layer in lcs:
            del layer.cache
            layer.drop_cache()
    return new


def to_cnn(model: nn.Module) -> nn.Module:
    """Collapse an eFCN or eLCN back into a CNN: each embedded layer becomes a conv of its
    original type whose kernel is the projection of the layer onto the CNN subspace
    (:func:`needle_core.project`), with the layer's hooks and ``requires_grad``.
    ``to_cnn(embed(cnn))`` computes exactly ``cnn``."""
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
        _carry(layer, conv)
        for path in paths[id(layer)]:
            new = _replace(new, path, conv)
    return new
