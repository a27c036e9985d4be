"""Training and evaluation on tensors that live on the training device."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """``(mean cross-entropy loss, accuracy in [0, 1])`` of ``model`` in eval mode on the
    whole of ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss_sum += F.cross_entropy(logits.double(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n
