"""Paths between two networks of the same architecture in FC space (paper.md §7).

Typical endpoints: the CNN at the switch, embedded (``needle_core.embed``); the eFCN at the
end of training; an FCN trained from scratch (``needle_core.fcn``).  All of them have the
same module tree and parameter shapes, which is all this module needs: it never looks at
what a layer is, only at its parameters and buffers, matched by name.

Four paths, as in the authors' code (``sdascoli/anarchitectural-search``, ``interp.py``):

* :func:`linear`: ``θ(t) = (1-t)·θa + t·θb``, every parameter and floating buffer.
* :func:`curvilinear`: per tensor, the norm and the direction are interpolated separately.
* :func:`output_average`: the *function-space* baseline ``(1-t)·a(x) + t·b(x)``.
* :func:`string`: the string (elastic band) method: interior points start on the linear
  path and take alternately an SGD step on the training loss and a spring step towards the
  mean of their neighbours, endpoints fixed.

:func:`scan` evaluates a path on a grid of ``t`` with :func:`needle_core.train.evaluate` and
returns tidy rows; :func:`barrier` reads the loss barrier off them.  A barrier near 0 says
the two endpoints sit in one basin along that path; a clear positive barrier says the path
crosses a ridge (it says nothing about *other* paths: the string method looks for a lower one).

Memory.  An eFCN is big (VanillaCNN 110.6 M parameters = 0.44 GB in float32, AlexNet 239 M =
0.96 GB).  Nothing here flattens a model into a vector: every operation runs tensor by
tensor, in place, so the temporaries are at most two tensors of the size of the largest
layer (VanillaCNN: 18496×3888 = 72 M entries, 0.29 GB).  A network returned by
:func:`linear`/:func:`curvilinear` is one copy of ``a`` (unless ``out=`` is given, then
none); :func:`scan` reuses a single scratch copy for the whole grid; :func:`output_average`
copies nothing; :func:`string` holds ``n_points - 2`` interior copies plus one set of
gradients at a time.  ``a`` and ``b`` are never modified.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .train import evaluate

METHODS = ("linear", "curvilinear", "output_average", "string")


# -- checks ----------------------------------------------------------------------------------

def _tensors(model: nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """``name -> (kind, tensor)`` for every parameter and buffer of ``model``."""
    out = {name: ("parameter", p) for name, p in model.named_parameters()}
    out.update({name: ("buffer", b) for name, b in model.named_buffers()})
    return out


def check_compatible(a: nn.Module, b: nn.Module, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise :class:`ValueError` unless ``a`` and ``b`` have the same parameter and buffer
    names, each with the same shape, dtype and device.  The message says which differ."""
    na, nb = names
    ta, tb = _tensors(a), _tensors(b)
    problems = []

    def some(items):
        items = list(items)
        return ", ".join(items[:6]) + (f", … ({len(items)} in all)" if len(items) > 6 else "")

    only_a = [n for n in ta if n not in tb]
    only_b = [n for n in tb if n not in ta]
    if only_a:
        problems.append(f"only in {na}: {some(only_a)}")
    if only_b:
        problems.append(f"only in {nb}: {some(only_b)}")
    for attr, label in (("shape", "shapes"), ("dtype", "dtypes"), ("device", "devices")):
        diff = [f"{n} {tuple(x) if attr == 'shape' else x} vs {tuple(y) if attr == 'shape' else y}"
                for n, (kind, t) in ta.items() if n in tb
                for x, y in [(getattr(t, attr), getattr(tb[n][1], attr))] if x != y]
        if diff:
            problems.append(f"{label} differ: {some(diff)}")
    kinds = [n for n, (kind, _) in ta.items() if n in tb and tb[n][0] != kind]
    if kinds:
        problems.append(f"parameter in one and buffer in the other: {some(kinds)}")
    if problems:
        raise ValueError(
            f"{na} and {nb} are not two networks of the same architecture: " + "; ".join(problems) + ". "
            "Interpolate between networks built the same way (e.g. needle_core.embed(cnn, input_shape) and "
            "needle_core.fcn(cnn, input_shape), same architecture, width and kind='fc'/'lc').")


def _check_t(t: float, lo: float = -math.inf, hi: float = math.inf) -> float:
    t = float(t)
    if not math.isfinite(t) or not lo <= t <= hi:
        raise ValueError(f"t={t} is outside [{lo}, {hi}]." if math.isfinite(t) else f"t={t} is not finite.")
    return t


def _norm(x: torch.Tensor, chunk: int = 1 << 20) -> float:
    """Euclidean norm as a Python float, accumulated in float64 over slices of ``chunk``
    entries (8 MB temporaries).  ``torch.linalg.vector_norm`` in float32 is off by ~1e-4
    relative on a 4.5 M-entry eFCN weight on CPU; this is exact to ~1e-15."""
    flat = x.detach().reshape(-1)
    total = 0.0
    for start in range(0, flat.numel(), chunk):
        part = flat[start:start + chunk].double()
        total += float(torch.dot(part, part))
    return math.sqrt(total)


def _target(a: nn.Module, b: nn.Module, out: nn.Module | None) -> nn.Module:
    check_compatible(a, b)
    if out is None:
        return copy.deepcopy(a)
    if out is a or out is b:
        raise ValueError("out= must be a third network (e.g. one returned by an earlier call), not a or b.")
    check_compatible(a, out, ("a", "out"))
    return out


@torch.no_grad()
def _mix_buffers(a: nn.Module, b: nn.Module, t: float, out: nn.Module) -> None:
    """Buffers: floating ones linearly, others (counters) from the nearer endpoint."""
    ba, bb = dict(a.named_buffers()), dict(b.named_buffers())
    for name, target in out.named_buffers():
        x, y = ba[name], bb[name]
        if t == 0 or not target.is_floating_point():
            target.copy_(x if t < 0.5 else y)
        elif t == 1:
            target.copy_(y)
        else:
            torch.mul(x, 1.0 - t, out=target)
            target.add_(y, alpha=t)


# -- the paths ---------------------------------------------------------------------------------

@torch.no_grad()
def linear(a: nn.Module, b: nn.Module, t: float, out: nn.Module | None = None) -> nn.Module:
    """The network with every parameter and floating buffer ``(1-t)·θa + t·θb``.

    ``t`` is any finite float (outside ``[0, 1]`` extrapolates).  ``t=0`` and ``t=1`` give
    ``a`` and ``b`` bit for bit.  Returns a new copy of ``a`` (one model's memory), or writes
    into ``out`` in place and returns it (no new memory: reuse it along a grid of ``t``).
    Non-floating buffers are taken from the nearer endpoint.  Train/eval mode is ``a``'s (or
    ``out``'s)."""
    t = _check_t(t)
    out = _target(a, b, out)
    for target, x, y in _interior(a, b, t, out):
        torch.mul(x, 1.0 - t, out=target)
        target.add_(y, alpha=t)
    _mix_buffers(a, b, t, out)
    return out


def _interior(a: nn.Module, b: nn.Module, t: float, out: nn.Module):
    """``(out's parameter, a's, b's)`` for every parameter that ``t`` does not settle: at
    ``t = 0`` or ``1`` each parameter of ``out`` is copied from the endpoint (bit for bit)
    and nothing is yielded."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for name, target in out.named_parameters():
        x, y = pa[name], pb[name]
        if t == 0 or t == 1:
            target.copy_(x if t == 0 else y)
        else:
            yield target, x, y


@torch.no_grad()
def curvilinear(a: nn.Module, b: nn.Module, t: float, out: nn.Module | None = None,
                direction: str = "unit") -> nn.Module:
    """Per parameter tensor, the norm and the direction interpolated separately.

    With ``ua = θa/|θa|`` and ``ub = θb/|θb|`` (0 for a zero tensor), ``t`` in ``[0, 1]``::

        θ(t) = ((1-t)|θa| + t|θb|) · normalise((1-t)·ua + t·ub)          direction="unit"

    so ``|θ(t)|`` is exactly the linear interpolation of the norms and the direction moves
    from ``ua`` to ``ub`` along the great circle (not at constant angular speed).
    ``direction="raw"`` is what the authors' ``interp.py`` does: the direction of the
    *linear* point, ``normalise((1-t)·θa + t·θb)``, with the same interpolated norm.  The two
    agree when ``|θa| = |θb|``.  Degenerate cases: both tensors zero gives 0; a mixed
    direction of norm 0 (antipodal ``ua = -ub``) falls back to the linear point.

    Buffers are interpolated linearly (running statistics have no meaningful "direction").
    ``t=0`` and ``t=1`` give ``a`` and ``b`` bit for bit.  Memory and ``out`` as
    :func:`linear`; no temporary beyond a few scalars per tensor."""
    if direction not in ("unit", "raw"):
        raise ValueError(f"direction={direction!r}: use 'unit' (norm and direction separately) or 'raw' (authors' code).")
    t = _check_t(t, 0.0, 1.0)
    out = _target(a, b, out)
    for target, x, y in _interior(a, b, t, out):
        nx, ny = _norm(x), _norm(y)
        radius = (1.0 - t) * nx + t * ny
        if direction == "unit":
            cx = (1.0 - t) / nx if nx > 0 else 0.0
            cy = t / ny if ny > 0 else 0.0
        else:
            cx, cy = 1.0 - t, t
        torch.mul(x, cx, out=target)
        target.add_(y, alpha=cy)
        norm = _norm(target)
        if radius == 0:
            target.zero_()
        elif norm > 0 and math.isfinite(norm):
            target.mul_(radius / norm)
        else:  # antipodal directions: no direction to keep, take the linear point
            torch.mul(x, 1.0 - t, out=target)
            target.add_(y, alpha=t)
    _mix_buffers(a, b, t, out)
    return out


class OutputAverage(nn.Module):
    """``(1-t)·a(x) + t·b(x)``: the average of two networks' outputs (logits), not of their
    weights.  ``a`` and ``b`` are shared, not copied (no memory); ``t`` may be changed by
    assigning ``.t``.  At ``t=0`` (``t=1``) only ``a`` (``b``) is run, so the output is
    exactly ``a(x)`` (``b(x)``).  Calling ``.train()``/``.eval()`` on it sets both networks'
    modes; it starts in ``a``'s mode without changing either network."""

    def __init__(self, a: nn.Module, b: nn.Module, t: float):
        super().__init__()
        self.a, self.b, self.t = a, b, _check_t(t)
        self.training = a.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.t
        if t == 0:
            return self.a(x)
        if t == 1:
            return self.b(x)
        return (1 - t) * self.a(x) + t * self.b(x)

    def extra_repr(self) -> str:
        return f"t={self.t}"


def output_average(a: nn.Module, b: nn.Module, t: float) -> OutputAverage:
    """The module whose output is ``(1-t)·a(x) + t·b(x)`` (the function-space baseline of
    :func:`linear`); see :class:`OutputAverage`.  Checks that ``a`` and ``b`` match."""
    check_compatible(a, b)
    return OutputAverage(a, b, t)


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def _restore(modes: list[tuple[nn.Module, bool]]) -> None:
    for m, mode in modes:
        m.training = mode


def string(a: nn.Module, b: nn.Module, x: torch.Tensor, y: torch.Tensor, n_points: int = 5, steps: int = 100,
           lr: float = 0.1, spring: float = 0.5, batch_size: int = 250, generator: torch.Generator | None = None,
           history: list | None = None) -> list[nn.Module]:
    """The string (elastic band) method between ``a`` and ``b`` on training data ``x``
    ``(N, C, H, W)``, ``y`` ``(N,)`` (on the networks' device).

    ``n_points`` points ``θ_0 = a, …, θ_{n-1} = b``; the interior ones start on the linear
    path at ``t = i/(n-1)``.  Each of the ``steps`` iterations draws one minibatch of
    ``batch_size`` (a seeded reshuffle of ``x`` every epoch, without replacement; the whole
    set if ``batch_size >= N``) and then

    1. *landscape step*: every interior point takes one plain SGD step
       ``θ_i -= lr·∇ CE(θ_i; batch)``, in train mode (dropout on), on the same batch;
    2. *spring step* (all interior points at once, from the same old positions):
       ``θ_i += spring·((θ_{i-1} + θ_{i+1})/2 − θ_i)``; ``spring=1`` moves each point to
       the mean of its neighbours, ``0`` switches the spring off.  ``spring`` must lie in
       ``[0, 1]`` (stable).  The authors' ``stiffness`` k, ``θ_i += k(θ_{i-1} + θ_{i+1} −
       2θ_i)``, is ``spring = 2k``; their update is sequential (each point sees its
       already-moved left neighbour); ours is simultaneous, so it does not depend on order.

    Only parameters with ``requires_grad`` move; buffers stay at their linear
    interpolation.  Returns ``[a, θ_1, …, θ_{n-2}, b]``: the endpoints are ``a`` and ``b``
    themselves (never modified), the interior points new networks in ``a``'s train/eval
    mode.  If ``history`` is a list, the mean minibatch loss over interior points (before
    each step) is appended to it per iteration.

    Deterministic on CPU for a given ``generator`` (default: a fresh one seeded 0): it
    draws the batch order, and seeds a forked global RNG for dropout, so the caller's
    global RNG is left untouched.  Memory: ``n_points - 2`` copies of the network, plus one
    set of gradients and two tensor-sized temporaries at a time.
    """
    check_compatible(a, b)
    if n_points < 2:
        raise ValueError(f"n_points={n_points}: a string needs at least its two endpoints.")
    if not 0 <= spring <= 1:
        raise ValueError(f"spring={spring} must lie in [0, 1] (1 moves a point to its neighbours' mean; "
                         "the authors' stiffness k is spring=2k).")
    if steps < 0 or batch_size < 1 or not lr >= 0:
        raise ValueError(f"need steps >= 0, batch_size >= 1 and lr >= 0 (got {steps}, {batch_size}, {lr}).")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of the same length (got {len(x)} and {len(y)}).")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    points = [a] + [linear(a, b, i / (n_points - 1)) for i in range(1, n_points - 1)] + [b]
    interior = points[1:-1]
    if not interior or steps == 0:
        return points
    names = [name for name, p in a.named_parameters() if p.requires_grad]
    params = [dict(p.named_parameters()) for p in points]
    device = next(a.parameters()).device
    seed = int(torch.randint(0, 2 ** 62, (), generator=generator))
    modes = [_modes(p) for p in interior]
    n, size = len(x), min(batch_size, len(x))
    order, pos = None, n
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for p in interior:
                p.train()
            for _ in range(steps):
                if pos + size > n:  # new epoch: reshuffle, drop the incomplete last batch
                    order, pos = torch.randperm(n, generator=generator).to(x.device), 0
                idx = order[pos:pos + size]
                pos += size
                xb, yb = x[idx], y[idx]
                losses = []
                for i, point in enumerate(interior, start=1):
                    tensors = [params[i][name] for name in names]
                    with torch.enable_grad():
                        loss = F.cross_entropy(point(xb), yb)
                        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                    with torch.no_grad():
                        for p, g in zip(tensors, grads):
                            if g is not None:
                                p.sub_(g, alpha=lr)
                    losses.append(float(loss.detach()))
                    del grads, loss
                with torch.no_grad():
                    for name in names:
                        column = [params[i][name] for i in range(n_points)]
                        left = column[0]  # the left neighbour's position before this spring step
                        for i in range(1, n_points - 1):
                            old = column[i].clone()
                            column[i].mul_(1 - spring).add_(left, alpha=spring / 2).add_(column[i + 1], alpha=spring / 2)
                            left = old
                if history is not None:
                    history.append(float(np.mean(losses)))
    finally:
        for m in modes:
            _restore(m)
    return points


# -- evaluation along a path ----------------------------------------------------------------------

_PATHS: dict[str, Callable[..., nn.Module]] = {"linear": linear, "curvilinear": curvilinear}


def scan(a: nn.Module, b: nn.Module, method: str, x: torch.Tensor, y: torch.Tensor, n_points: int = 11, *,
         ts: Sequence[float] | None = None, points: Sequence[nn.Module] | None = None,
         train: tuple[torch.Tensor, torch.Tensor] | None = None, batch_size: int = 1000,
         **string_kwargs) -> pd.DataFrame:
    """Loss and accuracy of ``x`` ``(N, C, H, W)``, ``y`` ``(N,)`` along a path from ``a`` to
    ``b``, by :func:`needle_core.train.evaluate` (eval mode, mean cross-entropy, accuracy in
    ``[0, 1]``; ``batch_size`` is its evaluation batch).

    ``method`` is one of ``"linear"``, ``"curvilinear"``, ``"output_average"`` (evaluated at
    ``t = linspace(0, 1, n_points)``, or at the given ``ts``) or ``"string"``: then the
    points of ``points`` (a list returned by :func:`string`) are evaluated, or else a string
    of ``n_points`` is trained on ``train = (x_train, y_train)`` (default: ``x, y``) with
    ``string_kwargs`` passed to :func:`string`; ``t`` is the point's index / (n-1).

    Returns a tidy DataFrame with columns ``t`` (float), ``method``, ``metric``
    (``"loss"`` or ``"accuracy"``) and ``value``: two rows per point.  Memory: one scratch
    copy of ``a`` for linear/curvilinear (rewritten in place at every ``t``), none for
    output_average, the string's own points for string.  ``a``, ``b`` and their train/eval
    modes are left as they were.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    if string_kwargs and method != "string":
        raise TypeError(f"{sorted(string_kwargs)} only apply to method='string'.")
    if (points is not None or train is not None) and method != "string":
        raise TypeError("points= and train= only apply to method='string'.")
    check_compatible(a, b)
    modes = _modes(a) + _modes(b)
    rows = []

    def record(t, model):
        loss, accuracy = evaluate(model, x, y, batch_size=batch_size)
        rows.extend([dict(t=float(t), method=method, metric="loss", value=loss),
                     dict(t=float(t), method=method, metric="accuracy", value=accuracy)])

    try:
        if method == "string":
            if points is None:
                xt, yt = (x, y) if train is None else train
                points = string(a, b, xt, yt, n_points=n_points, **string_kwargs)
            if len(points) < 2:
                raise ValueError("points= must hold at least the two endpoints.")
            for i, point in enumerate(points):
                record(i / (len(points) - 1), point)
        else:
            grid = np.linspace(0.0, 1.0, n_points) if ts is None else np.asarray(ts, dtype=float)
            if method == "output_average":
                model = OutputAverage(a, b, 0.0)
                for t in grid:
                    model.t = _check_t(t)
                    record(t, model)
            else:
                scratch = None
                for t in grid:
                    scratch = _PATHS[method](a, b, float(t), out=scratch)
                    record(t, scratch)
                del scratch
    finally:
        _restore(modes)
    return pd.DataFrame(rows, columns=["t", "method", "metric", "value"])


def barrier(frame: pd.DataFrame, method: str | None = None) -> float:
    """The loss barrier of a path scanned by :func:`scan`:
    ``max over t of [loss(t) − ((1-t)·loss(t0) + t·loss(t1))]`` on the ``t`` grid rescaled to
    ``[0, 1]`` between its first ``t0`` and last ``t1`` points (the endpoints).

    0 when the losses along the path are linear (or convex) in ``t``, positive when the path
    climbs over a ridge; never negative (the endpoints count).  NaN if any loss is NaN (a
    diverged point is a result, not a row to skip).  ``frame`` must hold one method, or name
    it with ``method=``."""
    if method is not None:
        frame = frame[frame["method"] == method]
    methods = frame["method"].unique() if "method" in frame else []
    if len(methods) > 1:
        raise ValueError(f"the frame holds several methods {list(methods)}: pass method=..., or group by 'method'.")
    loss = frame[frame["metric"] == "loss"].sort_values("t")
    if len(loss) < 2:
        raise ValueError(f"a barrier needs the loss at two points at least (got {len(loss)}).")
    if loss["t"].duplicated().any():
        raise ValueError("several loss rows share one t: pass one path (filter by method, split, seed).")
    t = loss["t"].to_numpy(dtype=float)
    value = loss["value"].to_numpy(dtype=float)
    s = (t - t[0]) / (t[-1] - t[0])
    chord = (1 - s) * value[0] + s * value[-1]
    return float(np.max(value - chord))
