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

METHODS = ("linear", "curvilinear", "output_average", "string", "bezier")


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
           history: list | None = None, check: Callable[[int, list], bool] | None = None,
           check_every: int = 0) -> list[nn.Module]:
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

    ``check(step, points)`` (with ``check_every > 0``): called before the first step and
    after every ``check_every`` steps; the string stops early when it returns True (a
    convergence rule such as :class:`Plateau`, which gives the string its own convergence
    trace).  ``steps`` is then the budget.

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
    if check is not None and check_every > 0 and check(0, points):
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
            for step in range(1, steps + 1):
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
                if check is not None and check_every > 0 and (step % check_every == 0 or step == steps):
                    if check(step, points):  # evaluates in eval mode and restores train mode
                        break
    finally:
        for m in modes:
            _restore(m)
    return points


# -- trained curves (Garipov et al. 2018) ----------------------------------------------------------

def _refuse_batchnorm(model: nn.Module) -> None:
    """A point of a curve between networks with BatchNorm needs its running statistics
    recomputed at every ``t`` (Garipov et al.'s ``update_bn``); the networks here have none
    (VanillaCNN, AlexNet and their eFCN/FCN), so a model with one is refused, not handled."""
    bn = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    if bn:
        raise NotImplementedError(f"the model has normalisation layers with running statistics ({', '.join(bn[:3])}): "
                                  "a point of a curve would need them recomputed at every t (not implemented).")


def bend_init(a: nn.Module, b: nn.Module) -> nn.Module:
    """The bend of a quadratic Bézier curve that is the straight line: the midpoint
    ``(θa + θb) / 2`` (Garipov et al.'s linear initialisation), a new network."""
    check_compatible(a, b)
    _refuse_batchnorm(a)
    return linear(a, b, 0.5)


@torch.no_grad()
def bezier(a: nn.Module, b: nn.Module, bend: nn.Module, t: float, out: nn.Module | None = None) -> nn.Module:
    """The point ``θ(t) = (1-t)²·θa + 2t(1-t)·θc + t²·θb`` of the quadratic Bézier curve from
    ``a`` to ``b`` with bend ``c`` (:func:`bend_init`, :func:`train_curve`); ``t`` in
    ``[0, 1]``, ``t = 0`` and ``1`` give ``a`` and ``b`` bit for bit.  Buffers are mixed
    linearly (the networks here have no BatchNorm).  Memory and ``out`` as :func:`linear`."""
    t = _check_t(t, 0.0, 1.0)
    out = _target(a, b, out)
    check_compatible(a, bend, ("a", "bend"))
    pc = dict(bend.named_parameters())
    names = {id(p): n for n, p in out.named_parameters()}
    for target, x, y in _interior(a, b, t, out):
        c = pc[names[id(target)]]
        torch.mul(x, (1.0 - t) ** 2, out=target)
        target.add_(c, alpha=2.0 * t * (1.0 - t))
        target.add_(y, alpha=t * t)
    _mix_buffers(a, b, t, out)
    return out


class Plateau:
    """A pre-declared stopping rule: ``update(value)`` records one check of a quantity that
    should fall (a curve's barrier) and returns True once ``patience`` consecutive checks
    have not improved on the best so far by more than ``tolerance`` (relative) and
    ``min_delta`` (absolute): an improvement is ``value < best·(1 − tolerance)`` and
    ``best − value > min_delta``.  A value that is not finite stops at once."""

    def __init__(self, tolerance: float = 0.01, patience: int = 2, min_delta: float = 0.0):
        if not 0 <= tolerance < 1 or patience < 1 or min_delta < 0:
            raise ValueError(f"need 0 <= tolerance < 1, patience >= 1 and min_delta >= 0 (got {tolerance}, "
                             f"{patience}, {min_delta}).")
        self.tolerance, self.patience, self.min_delta = tolerance, patience, min_delta
        self.best, self.stale, self.values = math.inf, 0, []

    @property
    def stopped(self) -> bool:
        return self.stale >= self.patience or bool(self.values and not math.isfinite(self.values[-1]))

    def update(self, value: float) -> bool:
        value = float(value)
        self.values.append(value)
        if not math.isfinite(value):
            return True
        if self.best == math.inf or (value < self.best * (1 - self.tolerance) and self.best - value > self.min_delta):
            self.best, self.stale = min(value, self.best), 0
        else:
            self.stale += 1
            self.best = min(self.best, value)
        return self.stale >= self.patience


def excess(ts: Sequence[float], losses: Sequence[float]) -> float:
    """The barrier of losses on a grid: ``max over t of loss(t) − chord(t)``, the chord
    joining the first and last losses (what :func:`barrier` reads off a scan)."""
    t, v = np.asarray(ts, dtype=float), np.asarray(losses, dtype=float)
    s = (t - t[0]) / (t[-1] - t[0])
    return float(np.max(v - ((1 - s) * v[0] + s * v[-1])))


def path_losses(points_or_path, x: torch.Tensor, y: torch.Tensor, ts: Sequence[float] | None = None,
                batch_size: int = 1000) -> list[float]:
    """The training loss (eval mode) of ``x``, ``y`` at every point of a string (a list of
    networks) or at every ``t`` of ``ts`` along ``points_or_path(t, out) -> network``."""
    if ts is None:
        return [evaluate(p, x, y, batch_size)[0] for p in points_or_path]
    losses, scratch = [], None
    for t in ts:
        scratch = points_or_path(float(t), scratch)
        losses.append(evaluate(scratch, x, y, batch_size)[0])
    return losses


def train_curve(a: nn.Module, b: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, batch_size: int,
                max_steps: int, check_every: int, check: tuple[torch.Tensor, torch.Tensor] | None = None,
                ts: Sequence[float] = tuple(np.linspace(0, 1, 11)), tolerance: float = 0.01, patience: int = 2,
                min_delta: float = 1e-3, bend: nn.Module | None = None, generator: torch.Generator | None = None,
                eval_batch_size: int = 1000) -> tuple[nn.Module, pd.DataFrame]:
    """Train the bend of a quadratic Bézier curve from ``a`` to ``b`` on ``x``, ``y`` as
    Garipov et al. (NeurIPS 2018) do: at every step one mini-batch (a seeded reshuffle every
    epoch) and one ``t ~ U(0, 1)``; the loss of the point ``θ(t)`` on the batch (train mode)
    is minimised over the bend by plain SGD, ``θc -= lr · 2t(1-t) · ∇θ(t)`` (the chain rule
    through the curve; ``a`` and ``b`` never move).

    The stopping rule is fixed before training: every ``check_every`` steps (and before the
    first) the curve's training loss is evaluated at every ``t`` of ``ts`` on ``check``
    (default ``x, y``), and training stops when the curve's barrier (its maximum excess
    over the chord between the endpoints' losses, :func:`excess`: the maximum training loss
    along the curve, less the part the fixed endpoints account for) has not fallen by more
    than ``tolerance`` (relative) and ``min_delta`` nats for ``patience`` consecutive checks
    (:class:`Plateau`), or after ``max_steps``.  (The maximum loss itself would stop a
    curve at once whenever an endpoint holds it.)  Returns ``(bend, trace)``: ``trace`` has one row per check and
    ``t``, columns ``check``, ``step``, ``t``, ``loss``, ``stopped`` (True on the last
    check's rows if the rule, not the budget, stopped it).

    Only parameters with ``requires_grad`` move (a frozen one stays on the straight line);
    weights that read padding zeros get no gradient and stay at the midpoint: they never
    change the function.  Deterministic on CPU for a ``generator`` (default seeded 0); the
    caller's global RNG is left untouched (dropout draws from a forked one).  Memory: ``a``,
    ``b``, the bend, one scratch point and one set of gradients.
    """
    check_compatible(a, b)
    _refuse_batchnorm(a)
    if max_steps < 0 or check_every < 1 or batch_size < 1 or not lr >= 0:
        raise ValueError(f"need max_steps >= 0, check_every >= 1, batch_size >= 1 and lr >= 0 (got {max_steps}, "
                         f"{check_every}, {batch_size}, {lr}).")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of the same length (got {len(x)} and {len(y)}).")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    bend = bend_init(a, b) if bend is None else bend
    check_compatible(a, bend, ("a", "bend"))
    cx, cy = (x, y) if check is None else check
    rule = Plateau(tolerance, patience, min_delta)
    rows = []
    scratch = copy.deepcopy(a)
    path = lambda t, out: bezier(a, b, bend, t, out=out if out is not None else scratch)  # noqa: E731

    def checkpoint(index: int, step: int) -> bool:
        losses = path_losses(path, cx, cy, ts, eval_batch_size)
        rows.extend(dict(check=index, step=step, t=float(t), loss=v, stopped=False) for t, v in zip(ts, losses))
        return rule.update(excess(ts, losses))

    names = [name for name, p in a.named_parameters() if p.requires_grad]
    bend_params, point_params = dict(bend.named_parameters()), dict(scratch.named_parameters())
    device = next(a.parameters()).device
    seed = int(torch.randint(0, 2 ** 62, (), generator=generator))
    n, size = len(x), min(batch_size, len(x))
    order, pos, stopped, index = None, n, checkpoint(0, 0), 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        step = 0
        while not stopped and step < max_steps:
            step += 1
            if pos + size > n:
                order, pos = torch.randperm(n, generator=generator).to(x.device), 0
            idx = order[pos:pos + size]
            pos += size
            t = float(torch.rand((), generator=generator))
            bezier(a, b, bend, t, out=scratch)
            scratch.train()
            tensors = [point_params[name] for name in names]
            with torch.enable_grad():
                loss = F.cross_entropy(scratch(x[idx]), y[idx])
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            with torch.no_grad():
                for name, g in zip(names, grads):
                    if g is not None:
                        bend_params[name].sub_(g, alpha=lr * 2.0 * t * (1.0 - t))
            del grads, loss
            if step % check_every == 0 or step == max_steps:
                index += 1
                stopped = checkpoint(index, step)
    trace = pd.DataFrame(rows, columns=["check", "step", "t", "loss", "stopped"])
    if stopped:
        trace.loc[trace["check"] == trace["check"].max(), "stopped"] = True
    bend.eval()
    return bend, trace


# -- permutation alignment (weight matching, Ainsworth et al. 2023) -----------------------------

def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The weight layers of ``model`` in order: eFCN layers (kind "fc") and ``nn.Linear``."""
    from .layers import EmbeddedConv, FCConv

    chain = []
    for name, m in model.named_modules():
        if isinstance(m, FCConv) or isinstance(m, nn.Linear):
            chain.append((name, m))
        elif isinstance(m, (EmbeddedConv, nn.modules.conv._ConvNd)):
            raise NotImplementedError(f"{name} ({type(m).__name__}): weight matching here aligns FC-space networks "
                                      "(eFCN layers of kind 'fc' and nn.Linear) only.")
    return chain


def _view(layer: nn.Module, in_channels: int | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(W, bias, live)``: the weight as ``(O, S_out, C, S_in)`` (output channel, output
    position, input channel, input position), the bias as ``(O, S_out)`` and a 0/1 mask of
    the input positions that do not always read a padding zero (None: all live)."""
    from .layers import FCConv

    if isinstance(layer, FCConv):
        g = layer.geometry
        s_out, s_in = int(np.prod(g.out_hw)), int(np.prod(g.padded_hw))
        w = layer.weight.view(g.out_channels, s_out, g.in_channels, s_in)
        bias = None if layer.bias is None else layer.bias.view(g.out_channels, s_out)
        live = g.alive.reshape(1, 1, 1, s_in).to(w.dtype).to(w.device)
        return w, bias, live
    c = in_channels or layer.in_features
    if layer.in_features % c:
        raise NotImplementedError(f"a Linear layer of {layer.in_features} inputs after {c} channels: not a "
                                  "flattened channel map.")
    w = layer.weight.view(layer.out_features, 1, c, layer.in_features // c)
    return w, None if layer.bias is None else layer.bias.view(-1, 1), None


def weight_matching(a: nn.Module, b: nn.Module, max_iter: int = 100, seed: int = 0) -> list[torch.Tensor]:
    """Permutations of the hidden channels of ``b`` that best match ``a`` by weight
    matching (Ainsworth, Hayase and Srinivasa, ICLR 2023, "Git Re-Basin", algorithm 1):
    coordinate ascent over layers, each solving the linear assignment that maximises
    ``Σ ⟨W_a, P W_b⟩`` over the weights and biases that the layer's permutation touches,
    until no permutation changes (at most ``max_iter`` sweeps, layers in a seeded order).

    The symmetry group is the architecture's: in an eFCN (ReLU, then *spatial* max pooling,
    zero padding) only a permutation of whole channels, the same at every spatial position,
    leaves the function unchanged, so the group is that of the CNN (``ch!`` per layer), not
    the ``(ch·H·W)!`` of a plain MLP.  ``nn.Linear`` hidden layers permute their units.
    Weights that always read a padding zero are left out of the similarity (they never
    change the function).  Returns one index tensor per hidden layer (``perm[i]``: the unit
    of ``b`` that becomes unit ``i``); :func:`permute` applies them.
    """
    from scipy.optimize import linear_sum_assignment

    check_compatible(a, b)
    chain_a, chain_b = _chain(a), _chain(b)
    if len(chain_a) < 2:
        return []
    with torch.no_grad():
        views_a, views_b, channels = [], [], None
        for (_, la), (_, lb) in zip(chain_a, chain_b):
            va, vb = _view(la, channels), _view(lb, channels)
            views_a.append(va)
            views_b.append(vb)
            channels = va[0].shape[0]
        perms = [torch.arange(v[0].shape[0]) for v in views_a[:-1]]
        rng = np.random.default_rng(seed)

        for _ in range(max_iter):
            changed = False
            for i in rng.permutation(len(perms)):
                wa, ba, live = views_a[i]
                wb, bb, _ = views_b[i]
                wb = wb if i == 0 else wb[:, :, perms[i - 1]]
                mask = 1.0 if live is None else live
                sim = (wa * mask).reshape(len(wa), -1).double() @ (wb * mask).reshape(len(wb), -1).double().T
                if ba is not None:
                    sim += ba.double() @ bb.double().T
                na, _, la = views_a[i + 1]
                nb = views_b[i + 1][0]
                if i + 1 < len(perms):  # the next layer's outputs in their current order
                    nb = nb[perms[i + 1]]
                mask = 1.0 if la is None else la
                fa = (na * mask).transpose(0, 2).reshape(na.shape[2], -1).double()
                fb = (nb * mask).transpose(0, 2).reshape(nb.shape[2], -1).double()
                sim += fa @ fb.T
                _, col = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
                new = torch.as_tensor(col, dtype=torch.long)
                if not torch.equal(new, perms[i]):
                    gain = float(sim[torch.arange(len(new)), new].sum() - sim[torch.arange(len(new)), perms[i]].sum())
                    if gain > 1e-12 * max(1.0, float(sim.abs().max())):
                        perms[i], changed = new, True
            if not changed:
                break
    return perms


@torch.no_grad()
def permute(model: nn.Module, perms: list[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with the hidden channels of its weight layers permuted by
    ``perms`` (:func:`weight_matching`): the same function, other weights."""
    out = copy.deepcopy(model)
    chain, channels, views = _chain(out), None, []
    for _, layer in chain:
        views.append(_view(layer, channels))
        channels = views[-1][0].shape[0]
    if len(perms) != len(chain) - 1:
        raise ValueError(f"{len(perms)} permutations for {len(chain) - 1} hidden layers.")
    for i, (w, bias, _) in enumerate(views):
        new = w
        if i > 0:
            new = new[:, :, perms[i - 1]]
        if i < len(perms):
            new = new[perms[i]]
            if bias is not None:
                bias.copy_(bias[perms[i]].clone())
        w.copy_(new.clone())
    return out


def align(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None, **kwargs) -> nn.Module:
    """``b`` with its hidden channels permuted to match ``a`` (:func:`weight_matching`,
    :func:`permute`): a new network computing the same function as ``b``, checked on ``x``
    (default: 2 random inputs of ``a``'s first layer's input shape is unknown, so pass
    ``x``) to a relative 1e-4 of the logits."""
    aligned = permute(b, weight_matching(a, b, **kwargs))
    if x is not None:
        with torch.no_grad():
            modes = _modes(b) + _modes(aligned)
            b.eval()
            aligned.eval()
            want, got = b(x), aligned(x)
            _restore(modes)
        scale = float(want.abs().max()) or 1.0
        if float((want - got).abs().max()) > 1e-4 * scale:
            raise AssertionError("the permuted network computes another function: this architecture has layers "
                                 "between its weight layers that do not commute with channel permutations.")
    return aligned


# -- evaluation along a path ----------------------------------------------------------------------

_PATHS: dict[str, Callable[..., nn.Module]] = {"linear": linear, "curvilinear": curvilinear}


def scan(a: nn.Module, b: nn.Module, method: str, x: torch.Tensor, y: torch.Tensor, n_points: int = 11, *,
         ts: Sequence[float] | None = None, points: Sequence[nn.Module] | None = None,
         train: tuple[torch.Tensor, torch.Tensor] | None = None, batch_size: int = 1000,
         bend: nn.Module | None = None, **string_kwargs) -> pd.DataFrame:
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
    if (bend is None) != (method != "bezier"):
        raise TypeError("bend= is needed by, and only applies to, method='bezier'.")
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
                path = _PATHS.get(method) or (lambda a, b, t, out: bezier(a, b, bend, t, out=out))
                for t in grid:
                    scratch = path(a, b, float(t), out=scratch)
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
