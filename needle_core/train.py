"""Training and evaluation on tensors that live on the training device."""
from __future__ import annotations

import contextlib
import ctypes
import sys

import torch
import torch.nn.functional as F
from torch import nn


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward pass's precision: ``"fp32"`` leaves everything in fp32 (a null context);
    ``"bf16"`` runs the matrix products (linear, conv, matmul) in bfloat16 under
    ``torch.autocast`` while the weights, their gradients and the SGD update stay fp32.  On a
    CPU with avx512_bf16 or AMX, and on a GPU, bf16 products run faster; every trained
    number changes (benchmarks/precision.py measures how much)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision={precision!r}: use fp32 or bf16.")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             precision: str = "fp32") -> tuple[float, float]:
    """``(mean cross-entropy loss, accuracy in [0, 1])`` of ``model`` in eval mode on the
    whole of ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``; the model's train/eval mode is restored.
    The loss is summed in fp64 from the logits whatever the ``precision`` of the forward."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), batch_size):
        with autocast(precision, x.device):
            logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss_sum += F.cross_entropy(logits.double(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n


def make_optimizer(params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.SGD:
    """Plain SGD, the paper's optimiser (lr 0.1, no momentum, no weight decay by default)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of epoch ``epoch`` of a run seeded ``seed`` (below 2**63 for every seed
    and epoch that ``config.validate`` accepts)."""
    return seed * 1_000_003 + epoch


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator that shuffles epoch ``epoch`` of a run seeded ``seed``.

    Seeded from (seed, epoch) alone, so a run resumed at any epoch boundary draws exactly
    the batches it would have drawn: nothing about the RNG needs to be checkpointed.
    """
    return torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                batch_size: int, seed: int, epoch: int, precision: str = "fp32") -> torch.Tensor:
    """One epoch of SGD over a seeded permutation of ``(x, y)``; returns the mean training
    loss as a 0-d tensor on the device (no host synchronisation per step).  ``precision``:
    the forward's (:func:`autocast`); the backward follows it, the update is fp32.

    Dropout draws from the global RNG, which is re-seeded from (seed, epoch) for the same
    reason as :func:`epoch_generator`.
    """
    from .data import batches

    torch.manual_seed(epoch_seed(seed, epoch))
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for idx in batches(len(x), batch_size, epoch_generator(seed, epoch, x.device)):
        with autocast(precision, x.device):
            loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(idx)
    return total / len(x)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    By default glibc unmaps every freed block over 32 MB, so each CPU step maps and zeroes
    the eFCN's fresh 0.44 GB weight gradient again: benchmarks/train_step.py measured the
    step at 1.5x its matmuls alone, 1.13x with this setting (one thread).  The price is that
    the process keeps its peak memory.  Returns False where it does not apply (not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
