"""Where every copy of a convolution kernel sits once the convolution is written as a matrix.

A convolution with kernel ``w[o, c, ky, kx]`` is a linear map from the *padded* input map
``(C, Hp, Wp)`` to the output map ``(O, Ho, Wo)`` (paper.md §2).  Output position ``(i, j)``
reads input ``(i*sh + ky*dh, j*sw + kx*dw)``.  Everything here is pure index arithmetic on
that fact; no module in this file owns parameters.

Conventions used throughout the package:

* a ``Conv1d`` is a ``Conv2d`` with ``H = 1`` and ``kh = 1``;
* groups split the channels: ``O = G*Og`` outputs and ``C = G*Cg`` inputs, and every
  per-copy tensor ("band") has the shape ``(G, Og, Ho, Wo, Cg, kh, kw)``;
* a position of the padded input is *dead* when it always holds a zero that padding put
  there (internal zero padding, or a zero-padding layer right before the conv).  Weights
  that read a dead position never get a gradient and never change the function.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one convolution applied to one input size.

    ``pad`` is in ``F.pad`` order for the 4-d view ``(left, right, top, bottom)``;
    ``pad_mode`` is an ``F.pad`` mode (``"constant"`` means zeros).  ``alive`` is a bool
    tensor ``(Hp, Wp)``: False where the padded input is a padding zero for every input.
    """

    dim: int  # 1 for Conv1d, 2 for Conv2d
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]
    pad_mode: str
    in_hw: tuple[int, int]
    alive: torch.Tensor = field(repr=False, compare=False)
    conv_args: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def padded_hw(self) -> tuple[int, int]:
        left, right, top, bottom = self.pad
        return self.in_hw[0] + top + bottom, self.in_hw[1] + left + right

    @property
    def out_hw(self) -> tuple[int, int]:
        (hp, wp), (kh, kw) = self.padded_hw, self.kernel
        (sh, sw), (dh, dw) = self.stride, self.dilation
        return (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1

    @property
    def in_features(self) -> int:
        """Length of the flattened padded input ``C*Hp*Wp`` (columns of the eFCN matrix)."""
        hp, wp = self.padded_hw
        return self.in_channels * hp * wp

    @property
    def out_features(self) -> int:
        """Length of the flattened output ``O*Ho*Wo`` (rows of the eFCN matrix)."""
        ho, wo = self.out_hw
        return self.out_channels * ho * wo

    @property
    def band_shape(self) -> tuple[int, ...]:
        """``(G, Og, Ho, Wo, Cg, kh, kw)``: one entry per copy of a kernel weight."""
        g = self.groups
        return (g, self.out_channels // g, *self.out_hw, self.in_channels // g, *self.kernel)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """Shape of the original conv weight (``(O, Cg, k)`` or ``(O, Cg, kh, kw)``)."""
        cg = self.in_channels // self.groups
        return (self.out_channels, cg, self.kernel[1]) if self.dim == 1 else (self.out_channels, cg, *self.kernel)

    def band_strides(self) -> tuple[int, ...]:
        """Strides of the band inside a contiguous eFCN matrix ``(O*Ho*Wo, C*Hp*Wp)``.

        Row ``(o, i, j)`` and column ``(c, i*sh + ky*dh, j*sw + kx*dw)`` hold copy
        ``w[o, c, ky, kx]``, so the whole band is one strided view: building or reading it
        never loops over positions in Python.
        """
        hp, wp = self.padded_hw
        ho, wo = self.out_hw
        (sh, sw), (dh, dw) = self.stride, self.dilation
        n_in, og, cg = self.in_features, self.out_channels // self.groups, self.in_channels // self.groups
        row = n_in  # one output position further down the matrix
        return (
            og * ho * wo * row + cg * hp * wp,  # next group: next rows and next input channels
            ho * wo * row,  # o
            wo * row + sh * wp,  # i
            row + sw,  # j
            hp * wp,  # c
            dh * wp,  # ky
            dw,  # kx
        )

    def copy_alive(self) -> torch.Tensor:
        """Bool ``(Ho, Wo, kh, kw)``: whether copy ``(i, j, ky, kx)`` reads a live input."""
        hp, wp = self.padded_hw
        (sh, sw), (dh, dw) = self.stride, self.dilation
        alive = self.alive.contiguous()
        return alive.as_strided((*self.out_hw, *self.kernel), (sh * wp, sw, dh * wp, dw))


def as_4d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``(N, C, L) -> (N, C, 1, L)`` for 1-d maps; 2-d maps pass through."""
    return x.unsqueeze(2) if dim == 1 else x


def pad_4d(x: torch.Tensor, geometry: ConvGeometry) -> torch.Tensor:
    """Pad a 4-d map exactly as the original conv did (any padding mode)."""
    if not any(geometry.pad):
        return x
    if geometry.pad_mode == "constant":
        return F.pad(x, geometry.pad)
    # F.pad's non-constant modes only pad the dims that have padding: a 1-d map padded with
    # reflect/replicate/circular goes through as a 3-d tensor.
    if geometry.dim == 1:
        return F.pad(x.squeeze(2), geometry.pad[:2], mode=geometry.pad_mode).unsqueeze(2)
    return F.pad(x, geometry.pad, mode=geometry.pad_mode)


def propagate_alive(alive: torch.Tensor, pad: tuple[int, ...], mode: str) -> torch.Tensor:
    """Live mask ``(H, W)`` after padding: a padded position is live iff it copies a live one.

    Constant (zero) padding adds dead positions; reflect, replicate and circular padding copy
    positions, so they copy their liveness too.  ``pad`` is in ``F.pad`` order for ``(H, W)``.
    """
    pad = tuple(pad) + (0, 0) * ((4 - len(pad)) // 2)
    as_float = alive.to(torch.float64)[None, None]
    if mode == "constant":
        return F.pad(as_float, pad)[0, 0] > 0
    return F.pad(as_float, pad, mode=mode)[0, 0] > 0


PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def conv_geometry(conv: nn.Conv1d | nn.Conv2d, in_hw: tuple[int, int], upstream_alive: torch.Tensor | None) -> ConvGeometry:
    """Geometry of ``conv`` applied to a map of spatial size ``in_hw`` (``(1, L)`` for 1-d).

    ``upstream_alive`` (``(H, W)`` bool, or None for all live) marks positions of the conv's
    input that are zeros put there by a padding layer before it.
    """
    dim = 1 if isinstance(conv, nn.Conv1d) else 2

    def pair(v):
        return (1, v[0]) if dim == 1 else tuple(v)

    pad = tuple(conv._reversed_padding_repeated_twice)  # F.pad order, resolves padding="same"
    pad = pad + (0, 0) if dim == 1 else pad
    mode = PAD_MODES[conv.padding_mode]
    alive_in = torch.ones(in_hw, dtype=torch.bool) if upstream_alive is None else upstream_alive.reshape(in_hw)
    conv_args = dict(
        in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=conv.kernel_size,
        stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
        bias=conv.bias is not None, padding_mode=conv.padding_mode,
    )
    return ConvGeometry(
        dim=dim, in_channels=conv.in_channels, out_channels=conv.out_channels, groups=conv.groups,
        kernel=pair(conv.kernel_size), stride=pair(conv.stride), dilation=pair(conv.dilation),
        pad=pad, pad_mode=mode, in_hw=tuple(in_hw), alive=propagate_alive(alive_in, pad, mode),
        conv_args=conv_args,
    )
