"""The two embedded forms of a convolution: a dense FC layer (eFCN) and a locally connected
layer (eLCN).

Both remember the :class:`~needle_core.geometry.ConvGeometry` they came from and expose their
weights as a *band* ``(G, Og, Ho, Wo, Cg, kh, kw)``: one entry per copy of a kernel weight.
The subspace code (:mod:`needle_core.subspace`) only ever talks to that interface, so the
eFCN and the eLCN share one implementation of ``project`` and ``deviation``.

An embedded layer computes its conv on one input size only: it refuses any other with an
:class:`EmbeddingError` that names it and the size it was embedded for.
"""
from __future__ import annotations

import ctypes
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from .geometry import ConvGeometry, as_4d, pad_4d


HUGE_PAGE = 2 << 20  # bytes of a transparent huge page on x86-64 and most aarch64 kernels
MADV_HUGEPAGE = 14  # from Linux's mman-common.h
WINDOW_BYTES = 4 << 20  # write_dense's temporary may take this much, or 1/WINDOW_FRACTION of the layer
WINDOW_FRACTION = 16
_madvise = None  # libc's madvise, loaded on first use (None: not tried yet, False: not available)


def advise_huge_pages(tensor: torch.Tensor) -> bool:
    """Ask Linux to back the (untouched) memory of a big CPU tensor with transparent huge pages.

    A fresh dense matrix is otherwise faulted in one 4 KiB page at a time, on its first
    write: for the eFCN of AlexNet (0.96 GB) those ~230,000 page faults cost more than
    writing the matrix itself (benchmarks/embed.py).  With 2 MiB pages there are 512 times
    fewer.  Only the 2 MiB-aligned interior of the tensor is advised; the tensor's values
    and its later use are unaffected.  Returns whether the advice was given (False: not
    Linux, not CPU, too small, or THP unavailable; nothing changes then).
    """
    global _madvise
    nbytes = tensor.numel() * tensor.element_size()
    if tensor.device.type != "cpu" or nbytes < 2 * HUGE_PAGE or not sys.platform.startswith("linux"):
        return False
    if _madvise is None:
        try:
            _madvise = ctypes.CDLL(None, use_errno=True).madvise
            _madvise.argtypes, _madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
        except (OSError, AttributeError):
            _madvise = False
    if not _madvise:
        return False
    start = -(-tensor.data_ptr() // HUGE_PAGE) * HUGE_PAGE
    end = (tensor.data_ptr() + nbytes) // HUGE_PAGE * HUGE_PAGE
    return end > start and _madvise(start, end - start, MADV_HUGEPAGE) == 0


def dense_empty(geometry: ConvGeometry, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised eFCN matrix ``(O*Ho*Wo, C*Hp*Wp)`` of ``like``'s dtype and device
    (advised to huge pages on a Linux CPU: :func:`advise_huge_pages`)."""
    weight = like.new_empty(geometry.out_features, geometry.in_features)
    advise_huge_pages(weight)
    return weight


def write_dense(geometry: ConvGeometry, out: torch.Tensor, kernel: torch.Tensor) -> None:
    """Write the eFCN matrix of ``kernel`` into ``out`` ``(O*Ho*Wo, C*Hp*Wp)``, in place:
    every entry once (zeros off the band), so ``out`` may be uninitialised.

    Row ``(o, i, j)`` is the kernel ``w[o]`` zero-padded into the padded input map at offset
    ``(i*sh, j*sw)``; flattened, that is one fixed vector ``[0]*dmax + pad(w[o])`` read
    through a window that starts ``d = i*sh*Wp + j*sw`` entries before its end of zeros.  So
    each output position ``(i, j)`` is one contiguous 2-d copy of ``O`` whole rows: one write
    pass over the matrix, at memory speed, instead of zeroing it and then scattering the
    band (a second pass over every cache line, in runs of ``kw`` entries).
    """
    g = geometry
    (ho, wo), (hp, wp), (kh, kw) = g.out_hw, g.padded_hw, g.kernel
    (sh, sw), (dh, dw) = g.stride, g.dilation
    o_ch, c_ch, n = g.out_channels, g.in_channels, g.in_features
    og, cg = o_ch // g.groups, c_ch // g.groups
    kernel = kernel.reshape(o_ch, cg, kh, kw)
    box = (slice(0, (kh - 1) * dh + 1, dh), slice(0, (kw - 1) * dw + 1, dw))

    def place(grid: torch.Tensor, o0: int, o1: int) -> None:
        """``grid`` ``(o1 - o0, C, Hp, Wp)`` zeroed: put ``w[o0:o1]`` at offset (0, 0)."""
        for group in range(o0 // og, (o1 - 1) // og + 1):
            a, b = max(o0, group * og), min(o1, (group + 1) * og)
            grid[a - o0:b - o0, group * cg:(group + 1) * cg, box[0], box[1]].copy_(kernel[a:b])

    if not out.is_contiguous() or out.shape != (g.out_features, n):
        raise ValueError(f"write_dense needs a contiguous ({g.out_features}, {n}) matrix, got {tuple(out.shape)}")
    if ho * wo == 1:  # one output position: the matrix is the padded kernel itself
        out.zero_()
        place(out.view(o_ch, c_ch, hp, wp), 0, o_ch)
        return
    dmax = (ho - 1) * sh * wp + (wo - 1) * sw
    # the windowed vectors of a few output channels at a time: at most 1/16 of the layer
    # (or 4 MiB), so the temporary never matters next to the matrix
    per_channel = (dmax + n) * out.element_size()
    budget = max(WINDOW_BYTES, out.numel() * out.element_size() // WINDOW_FRACTION)
    chunk = max(1, min(o_ch, budget // per_channel))
    rows = out.view(o_ch, ho, wo, n)
    for o0 in range(0, o_ch, chunk):
        o1 = min(o_ch, o0 + chunk)
        source = out.new_zeros(o1 - o0, dmax + n)
        place(source[:, dmax:].view(o1 - o0, c_ch, hp, wp), o0, o1)
        for i in range(ho):
            for j in range(wo):
                d = i * sh * wp + j * sw
                rows[o0:o1, i, j].copy_(source[:, dmax - d:dmax - d + n])


class EmbeddingError(ValueError):
    """A model, or part of it, cannot be embedded, or an embedded layer gets an input it was
    not embedded for; the message names the module, its type, the problem and the fix."""


def sq_norm(x: torch.Tensor, columns: torch.Tensor | None = None, chunk: int = 1 << 18) -> float:
    """``‖x‖²`` as a Python float; with ``columns`` (a 0/1 vector over the last dimension of a
    2-d ``x``), over the columns it keeps, ``chunk`` elements of ``x`` at a time.

    fp32 norms of runs of 1,024 elements, squared and summed in fp64 on ``x``'s device (one
    synchronisation): one fp32 norm over 262,144 small squares is off by ~1e-4 on this CPU,
    over tens of millions along a strided view by ~1e-2 (the converged campaign's δ_loc read
    3% low, book page 4); runs of 1,024 keep it to ~1e-7."""
    def runs(flat: torch.Tensor) -> torch.Tensor:
        n = flat.numel() - flat.numel() % 1024
        total = (torch.linalg.vector_norm(flat[:n].view(-1, 1024), dim=1).double() ** 2).sum()
        return total + torch.linalg.vector_norm(flat[n:]).double() ** 2 if n < flat.numel() else total

    if columns is None:
        return float(runs(x.reshape(-1)))
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    rows = max(1, chunk // max(x.shape[-1], 1))
    for start in range(0, x.shape[0], rows):
        total += runs((x[start:start + rows] * columns).reshape(-1))
    return float(total)


class EmbeddedConv(nn.Module):
    """Base class: a convolution written in a bigger weight space.

    Subclasses store ``weight`` and ``bias`` in their own layout and define ``band`` (a view
    of ``weight`` with one entry per kernel copy) and ``bias_band`` ``(G, Og, Ho, Wo)``.
    """

    kind: str

    def __init__(self, geometry: ConvGeometry, weight: torch.Tensor, bias: torch.Tensor | None, path: str = ""):
        super().__init__()
        self.geometry = geometry
        self.path = path  # where the conv sat in the CNN: error messages name it
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    # -- the linear map between kernel space and this layer's space -------------------------
    @classmethod
    def from_conv(cls, conv: nn.Module, geometry: ConvGeometry, path: str = "") -> "EmbeddedConv":
        """The embedded layer computing exactly ``conv`` on inputs of ``geometry.in_hw``."""
        with torch.no_grad():
            weight = cls.embed_kernel(geometry, conv.weight.detach())
            bias = None if conv.bias is None else cls.embed_bias(geometry, conv.bias.detach())
        return cls(geometry, weight, bias, path)

    @classmethod
    def empty_weight(cls, geometry: ConvGeometry, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def band_of(cls, geometry: ConvGeometry, weight: torch.Tensor) -> torch.Tensor:
        """View of ``weight`` (this layer's layout) as the band ``(G, Og, Ho, Wo, Cg, kh, kw)``."""
        raise NotImplementedError

    @classmethod
    def embed_kernel(cls, geometry: ConvGeometry, kernel: torch.Tensor) -> torch.Tensor:
        """The linear embedding of a kernel-shaped tensor (a weight, a gradient, a momentum
        buffer) into this layer's weight layout: zero off the band, one copy per position."""
        weight = cls.empty_weight(geometry, kernel)
        cls.write_band(geometry, weight, kernel)
        return weight

    @classmethod
    def write_band(cls, geometry: ConvGeometry, weight: torch.Tensor, kernel: torch.Tensor) -> None:
        """Copy ``kernel`` to every position of the band of a zeroed ``weight``, in place."""
        g, og, _, _, cg, kh, kw = geometry.band_shape
        cls.band_of(geometry, weight).copy_(kernel.reshape(g, og, 1, 1, cg, kh, kw).expand(geometry.band_shape))

    @torch.no_grad()
    def load_kernel(self, kernel: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Overwrite this layer, in place, with the embedding of ``kernel`` and ``bias``."""
        self.weight.zero_()
        self.write_band(self.geometry, self.weight, kernel)
        if self.bias is not None:
            self.bias.copy_(self.embed_bias(self.geometry, bias))

    @classmethod
    def embed_bias(cls, geometry: ConvGeometry, bias: torch.Tensor) -> torch.Tensor:
        """The embedding of a conv bias ``(O,)``: one copy per output position."""
        ho, wo = geometry.out_hw
        # repeat always copies (expand().contiguous() is a view of `bias` when Ho = Wo = 1,
        # and the embedded layer would then share its bias with the CNN)
        return cls.bias_layout(geometry, bias[:, None, None].repeat(1, ho, wo))

    @staticmethod
    def bias_layout(geometry: ConvGeometry, bias_ohw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- views used by the subspace geometry ----------------------------------------------
    # detach(), not .data: writes through these views bump the weight's version, which is
    # what tells autograd, and the eLCN's cached matrix, that the weight changed.
    @property
    def band(self) -> torch.Tensor:
        return self.band_of(self.geometry, self.weight.detach())

    @property
    def bias_band(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        g = self.geometry.groups
        return self.bias.detach().view(g, -1, *self.geometry.out_hw)

    def off_band_sq_norm(self, band_copy: torch.Tensor | None = None) -> float:
        """Squared norm of the live weights outside every receptive field (locality part).

        ``band_copy``: a copy of :attr:`band` the caller already made (not a view of the
        weight), which a layer that has to modify its band in place may use to restore it."""
        return 0.0

    def dead_count(self) -> int:
        """Number of weights that only ever read padding zeros (never trained)."""
        raise NotImplementedError

    def make_conv(self) -> nn.Module:
        """A fresh conv of the original type and hyper-parameters (weights uninitialised)."""
        cls = nn.Conv1d if self.geometry.dim == 1 else nn.Conv2d
        p = self.weight
        return cls(**self.geometry.conv_args, device=p.device, dtype=p.dtype)

    def extra_repr(self) -> str:
        g = self.geometry
        return (f"{g.in_channels}x{g.padded_hw[0]}x{g.padded_hw[1]} -> {g.out_channels}x{g.out_hw[0]}x{g.out_hw[1]}, "
                f"kernel={g.kernel}, stride={g.stride}, dilation={g.dilation}, groups={g.groups}, "
                f"bias={self.bias is not None}")

    def _check_input(self, x: torch.Tensor) -> None:
        """Refuse any input but ``(N, C, [H,] W)`` of the size this layer was embedded for:
        another size with the same number of elements would otherwise go through silently."""
        g = self.geometry
        expected = (g.in_channels, g.in_hw[1]) if g.dim == 1 else (g.in_channels, *g.in_hw)
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise EmbeddingError(
                f"embedded layer '{self.path}' ({type(self).__name__}) was embedded for inputs (N, "
                f"{', '.join(map(str, expected))}) and received an input of shape {tuple(x.shape)}: its matrix "
                "computes the conv on that one input size. Embed the CNN again with the input_shape of these "
                "inputs, or go back to a CNN with needle_core.to_cnn(model).")

    def _dense_forward(self, x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(N, C, [H,] W)`` through the dense matrix ``(O*Ho*Wo, C*Hp*Wp)`` of the
        padded, flattened map; output ``(N, O, [Ho,] Wo)``."""
        self._check_input(x)
        n = x.shape[0]
        x = pad_4d(as_4d(x, self.geometry.dim), self.geometry).reshape(n, -1)
        y = F.linear(x, matrix, None if bias is None else bias.reshape(-1)).reshape(n, self.geometry.out_channels,
                                                                                    *self.geometry.out_hw)
        return y.squeeze(2) if self.geometry.dim == 1 else y


class FCConv(EmbeddedConv):
    """eFCN layer: a dense matrix ``(O*Ho*Wo, C*Hp*Wp)`` acting on the flattened padded map.

    ``W[(o,i,j), (c,y,x)] = w[o, c, y - i*sh, x - j*sw]`` inside the receptive field, 0
    elsewhere; every one of those entries is a free parameter.  Input ``(N, C, H, W)`` or
    ``(N, C, L)``, output ``(N, O, Ho, Wo)`` or ``(N, O, Lo)``, exactly as the conv.
    """

    kind = "fc"

    @classmethod
    def empty_weight(cls, geometry, like):
        return like.new_zeros(geometry.out_features, geometry.in_features)

    @classmethod
    def embed_kernel(cls, geometry, kernel):
        # one write pass into fresh (huge-page) memory: see write_dense
        weight = dense_empty(geometry, kernel)
        write_dense(geometry, weight, kernel)
        return weight

    @torch.no_grad()
    def load_kernel(self, kernel, bias):
        write_dense(self.geometry, self.weight, kernel)  # through the Parameter: its version changes
        if self.bias is not None:
            self.bias.copy_(self.embed_bias(self.geometry, bias))

    @classmethod
    def band_of(cls, geometry, weight):
        return weight.as_strided(geometry.band_shape, geometry.band_strides())

    @staticmethod
    def bias_layout(geometry, bias_ohw):
        return bias_ohw.reshape(-1)

    def forward(self, x):
        return self._dense_forward(x, self.weight, self.bias)

    def reset_parameters(self):
        """PyTorch's default ``nn.Linear`` initialisation (the FCN baseline)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1])
            nn.init.uniform_(self.bias, -bound, bound)

    def off_band_sq_norm(self, band_copy=None):
        # Zero the band in place, measure what is left on live columns, put the band back:
        # exact (no cancellation between two big norms) and no full-size temporary.  The
        # band is scattered through the matrix, so reading it is slow: reuse a caller's copy.
        # Through .data: the weight is the same on return, so autograd must not see a write.
        # Live columns are picked by a 0/1 mask over whole rows, a few rows at a time
        # (sq_norm): a strided view of the live part (runs of a map's width) read 8x slower on
        # one thread, and its one fp32 reduction lost ~6% of conv1's off-band squares.
        with torch.no_grad():
            weight = self.weight.data
            band = self.band_of(self.geometry, weight)
            saved = band.clone() if band_copy is None else band_copy
            band.zero_()
            try:
                live = self.geometry.alive.to(weight).expand(self.geometry.in_channels, -1, -1).reshape(-1)
                return sq_norm(weight, columns=live)
            finally:
                band.copy_(saved)

    def dead_count(self):
        return self.geometry.out_features * self.geometry.in_channels * int((~self.geometry.alive).sum())


class LCConv(EmbeddedConv):
    """eLCN layer: locality kept, weight sharing untied.

    Weight ``(O, Ho, Wo, Cg, kh, kw)`` (one kernel per output position) and bias
    ``(O, Ho, Wo)``.  Computed through the dense matrix ``(O*Ho*Wo, C*Hp*Wp)`` the weights
    span (zero off the receptive fields).

    Outside training (no gradient to the weight: ``torch.no_grad()``, or a frozen weight)
    that matrix is cached and rebuilt only when the weight's version changes (an optimiser
    step, ``load_state_dict``, any in-place write).  A write through ``weight.data`` does not
    change the version: write under ``torch.no_grad()`` instead.
    """

    kind = "lc"
    cache = True  # False on an instance: the forward rebuilds its matrix and keeps none

    def __init__(self, geometry, weight, bias, path=""):
        super().__init__(geometry, weight, bias, path)
        self._dense: tuple[tuple, torch.Tensor] | None = None  # (weight's identity and version, matrix)

    @classmethod
    def empty_weight(cls, geometry, like):
        o, (ho, wo), cg = geometry.out_channels, geometry.out_hw, geometry.in_channels // geometry.groups
        return like.new_zeros(o, ho, wo, cg, *geometry.kernel)

    @classmethod
    def band_of(cls, geometry, weight):
        return weight.view(geometry.band_shape)

    @staticmethod
    def bias_layout(geometry, bias_ohw):
        return bias_ohw

    def forward(self, x):
        # Through the dense matrix: the patch-wise product does far fewer FLOPs, but on CPUs
        # its unfold and permutes cost ~10x more time than one dense matmul at the paper's sizes.
        return self._dense_forward(x, self.dense_matrix(), self.bias)

    def dense_matrix(self) -> torch.Tensor:
        """The eFCN matrix ``(O*Ho*Wo, C*Hp*Wp)`` of this layer: differentiable when autograd
        needs it, otherwise cached per version of the weight."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            self._dense = None  # training: the weight changes every step, and the memory is needed
            return self._scatter()
        if not self.cache:  # embed's proof: one layer's matrix at a time
            with torch.no_grad():
                return self._scatter()
        w = self.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if self._dense is None or self._dense[0] != key:
            self._dense = None  # freed before its successor is built
            with torch.no_grad():
                self._dense = (key, self._scatter())
        return self._dense[1]

    def drop_cache(self) -> None:
        """Free the cached dense matrix (it is rebuilt on the next forward that needs it)."""
        self._dense = None

    def _scatter(self) -> torch.Tensor:
        g = self.geometry
        dense = dense_empty(g, self.weight).zero_()  # huge pages: see advise_huge_pages
        FCConv.band_of(g, dense).copy_(self.weight.view(g.band_shape))  # autograd: a strided copy back
        return dense

    def __getstate__(self):  # copies and pickles leave the cache behind
        return dict(super().__getstate__(), _dense=None)

    def reset_parameters(self):
        """PyTorch's default conv initialisation, per position (the eLCN-from-scratch baseline)."""
        fan_in = self.weight[0, 0, 0].numel()
        bound = 1 / math.sqrt(fan_in)
        # kaiming_uniform_(a=sqrt(5)) on a conv weight is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def dead_count(self):
        dead_copies = (~self.geometry.copy_alive()).sum()
        g, og, _, _, cg, _, _ = self.geometry.band_shape
        return int(dead_copies) * g * og * cg


LAYERS = {"fc": FCConv, "lc": LCConv}
