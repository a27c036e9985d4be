"""The CNN subspace inside FC (or LC) weight space: projection and deviation (paper.md §6).

For an embedded layer with weight ``W``, the CNN subspace holds the ``W`` that are zero
outside the receptive fields (locality mask ``M``) and equal across the copies of each
kernel weight (weight sharing).  The orthogonal projection ``P(W)`` zeroes ``W`` outside
``M`` and replaces each copy by the mean of its copies.  Then

    δ = ‖W − P(W)‖/‖W‖,  δ_loc = ‖W ⊙ (1 − M)‖/‖W‖,  δ_ws = ‖W ⊙ M − P(W)‖/‖W‖,
    δ² = δ_loc² + δ_ws².

*Dead weights* — those that read an input position that is always a padding zero — never
get a gradient and never change the function.  The geometry is taken over the *live*
weights only (norms, means and the inner product of orthogonality); dead weights are
counted separately by :func:`deviation`, and :func:`project` overwrites them with the
projected kernel so that a projected layer is exactly the embedding of a CNN.
"""
from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from torch import nn

from .embedding import embedded_layers
from .layers import EmbeddedConv, sq_norm


#: What a run's provenance records of how its δ were summed: 2, every norm exact to ~1e-7
#: (:func:`needle_core.layers.sq_norm`, from 2026-12-06).  A run without it summed each layer's
#: off-band squares in one fp32 reduction, its δ_loc 2.7-3.4% low at conv1 of a trained w32
#: eFCN (benchmarks/deviation-bias-2026-12-06.txt).
DEVIATION_VERSION = 2


def _centred(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, spread)`` of the copies in ``x`` (positions on dims 2 and 3) over ``mask``
    (all copies when None).

    Copies are first measured from the centre copy, so sums stay exact in the layer's own
    precision: right after embedding the spread is exactly 0, not a rounding error.
    """
    ho, wo = x.shape[2], x.shape[3]
    ref = x[:, :, ho // 2: ho // 2 + 1, wo // 2: wo // 2 + 1]
    d = x - ref
    if mask is None:
        offset = d.mean((2, 3), keepdim=True)
    else:
        offset = (d * mask).sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True)
    return ref + offset, d - offset


def _mean_mask(layer: EmbeddedConv) -> torch.Tensor:
    """``(1, 1, Ho, Wo, Cg, kh, kw)``: the copies that enter the mean: the live ones, or all
    of them for a kernel entry that only ever reads padding."""
    alive = layer.geometry.copy_alive()  # the geometry's masks live on the CPU
    return _per_copy(layer, alive | ~alive.any(0).any(0))


def _per_copy(layer: EmbeddedConv, mask: torch.Tensor) -> torch.Tensor:
    """A ``(Ho, Wo, kh, kw)`` mask as ``(1, 1, Ho, Wo, Cg, kh, kw)`` in the weight's dtype,
    materialised over ``Cg``: a product with a band chunk then broadcasts over whole
    contiguous blocks of ``Ho*Wo*Cg*kh*kw`` instead of runs of ``kh*kw`` (about 8x faster
    on one CPU thread for AlexNet; the same numbers bit for bit)."""
    cg = layer.geometry.band_shape[4]
    mask = mask.to(layer.weight)[:, :, None].expand(mask.shape[0], mask.shape[1], cg, *mask.shape[2:])
    return mask.contiguous()[None, None]


def _chunks(layer: EmbeddedConv, size: int = 1 << 21, band: torch.Tensor | None = None):
    """The band (``layer.band``, or a copy of it) in slices of output channels of about
    ``size`` copies: temporaries stay small and hot in cache instead of several full-size
    copies of the band."""
    band = layer.band if band is None else band
    per_channel = band[:, :1].numel()
    step = max(1, size // per_channel)
    for start in range(0, band.shape[1], step):
        yield band[:, start:start + step]


@torch.no_grad()
def kernel_of(layer: EmbeddedConv) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The CNN kernel ``(O, Cg, [kh,] kw)`` and bias ``(O,)`` of the layer's projection
    onto the CNN subspace: the mean of the live copies of each weight."""
    mask = _mean_mask(layer)
    kernel = torch.cat([_centred(chunk, mask)[0] for chunk in _chunks(layer)], 1)
    bias = None if layer.bias is None else _centred(layer.bias_band)[0].reshape(-1)
    return kernel.reshape(layer.geometry.kernel_shape), bias


def project(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The nearest network whose embedded layers lie in the CNN subspace.

    Every embedded layer is replaced by the embedding of :func:`kernel_of`; other layers are
    untouched.  Idempotent, and orthogonal on the live weights."""
    model = model if inplace else copy.deepcopy(model)
    for _, layer in embedded_layers(model):
        layer.load_kernel(*kernel_of(layer))
    return model


@torch.no_grad()
def layer_sq_norms(layer: EmbeddedConv) -> dict[str, float]:
    """Squared norms over live weights (bias included): ``norm``, ``loc`` (off the
    receptive fields) and ``ws`` (spread of the copies around their mean), plus
    ``dead`` (squared norm of the dead weights) and the counts."""
    mask = _mean_mask(layer)
    alive = layer.geometry.copy_alive()
    alive = None if bool(alive.all()) else _per_copy(layer, alive)
    # An eFCN's band is scattered through the dense matrix and slow to read: gather it once
    # into contiguous memory for the sums below, and hand the copy to off_band_sq_norm,
    # which needs one to put the band back after zeroing it.
    band = layer.band
    saved = band if band.is_contiguous() else band.clone(memory_format=torch.contiguous_format)
    in_band = ws = 0.0
    for chunk in _chunks(layer, band=saved):
        spread = _centred(chunk, mask)[1]
        if alive is not None:
            chunk, spread = chunk * alive, spread * alive
        in_band += sq_norm(chunk)
        ws += sq_norm(spread)
    loc = layer.off_band_sq_norm(None if saved is band else saved)
    del saved
    norm = in_band + loc
    if layer.bias is not None:  # every bias copy is live: spread around the mean only
        b = layer.bias_band
        norm += sq_norm(b)
        ws += sq_norm(_centred(b)[1])
    total = sum(sq_norm(p) for p in layer.parameters())
    return dict(norm=norm, loc=loc, ws=ws, dead=max(total - norm, 0.0),
                n_weights=sum(p.numel() for p in layer.parameters()), n_dead=layer.dead_count())


def _row(name: str, kind: str, s: dict) -> dict:
    root = (lambda v: math.sqrt(v / s["norm"])) if s["norm"] > 0 else (lambda v: float("nan"))
    return dict(layer=name, kind=kind, n_weights=s["n_weights"], n_dead=s["n_dead"],
                delta=root(s["loc"] + s["ws"]), delta_loc=root(s["loc"]), delta_ws=root(s["ws"]),
                dead_fraction=math.sqrt(s["dead"] / (s["dead"] + s["norm"])) if s["dead"] + s["norm"] > 0 else 0.0)


def deviation(model: nn.Module) -> pd.DataFrame:
    """Distance of every embedded layer, and of the whole network, from the CNN subspace.

    One row per embedded layer plus a last row ``layer="network"`` (sums of squares over
    layers).  Columns: ``delta``, ``delta_loc``, ``delta_ws`` (relative, over live weights;
    ``delta**2 == delta_loc**2 + delta_ws**2``), ``n_weights``, ``n_dead`` (weights that
    only read padding zeros: they never train and are left out of the deltas) and
    ``dead_fraction`` (their share of the layer's norm).
    """
    rows, totals = [], dict(norm=0.0, loc=0.0, ws=0.0, dead=0.0, n_weights=0, n_dead=0)
    kinds = set()
    for name, layer in embedded_layers(model):
        s = layer_sq_norms(layer)
        rows.append(_row(name, layer.kind, s))
        kinds.add(layer.kind)
        totals = {k: totals[k] + s[k] for k in totals}
    if not rows:
        raise ValueError("the model has no embedded layer: call needle_core.embed(model, input_shape) first.")
    rows.append(_row("network", "+".join(sorted(kinds)), totals))
    return pd.DataFrame(rows)
