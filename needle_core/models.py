"""The paper's architectures, defined once (paper.md §3).

Source: the authors' code, ``sdascoli/anarchitectural-search`` (2019), models
``SkinnyCNNPrime`` (our :func:`vanilla_cnn`) and ``AlexNetPrime`` (our :func:`alexnet`).
Padding is its own ``ZeroPad2d`` layer before each ``Conv2d(padding=0)``, so the eFCN's
layers read the padded maps, as in the paper.  Input ``(N, 3, 32, 32)``, output logits
``(N, num_classes)``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .embedding import embed

INPUT_SHAPE = (3, 32, 32)


def vanilla_cnn(ch: int = 64, num_classes: int = 10, in_channels: int = 3) -> nn.Sequential:
    """VanillaCNN (``SkinnyCNNPrime``): three convs of width ``ch`` and one linear layer.

    Maps for a 32×32 input: 3×36×36 → ch×17×17 → pool 8×8 → pad 12×12 → ch×8×8 → pool 3×3
    → pad 5×5 → ch×3×3 → pool 1×1 → linear.  143,178 parameters at ``ch=64``; its eFCN has
    110,606,602.
    """
    return nn.Sequential(OrderedDict([
        ("pad1", nn.ZeroPad2d(2)), ("conv1", nn.Conv2d(in_channels, ch, 4, stride=2)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("pad2", nn.ZeroPad2d(2)), ("conv2", nn.Conv2d(ch, ch, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("pad3", nn.ZeroPad2d(1)), ("conv3", nn.Conv2d(ch, ch, 3)), ("relu3", nn.ReLU()), ("pool3", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(ch, num_classes)),
    ]))


def alexnet(ch: int = 64, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> nn.Sequential:
    """The CIFAR AlexNet (``AlexNetPrime``): five convs of widths ``ch, 3ch, 6ch, 4ch, 4ch``
    (64, 192, 384, 256, 256 at the paper's ``ch=64``) and three linear layers 4ch→512→512→10.

    2,848,906 parameters at ``ch=64``; its eFCN has 239,049,674.  ``ch`` other than 64 is
    our extension for quick runs.
    """
    c1, c2, c3, c4, c5 = ch, 3 * ch, 6 * ch, 4 * ch, 4 * ch
    return nn.Sequential(OrderedDict([
        ("pad1", nn.ZeroPad2d(2)), ("conv1", nn.Conv2d(in_channels, c1, 4, stride=2)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("pad2", nn.ZeroPad2d(2)), ("conv2", nn.Conv2d(c1, c2, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("pad3", nn.ZeroPad2d(1)), ("conv3", nn.Conv2d(c2, c3, 3)), ("relu3", nn.ReLU()),
        ("pad4", nn.ZeroPad2d(1)), ("conv4", nn.Conv2d(c3, c4, 3)), ("relu4", nn.ReLU()),
        ("pad5", nn.ZeroPad2d(1)), ("conv5", nn.Conv2d(c4, c5, 3)), ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()), ("drop1", nn.Dropout(dropout)), ("fc1", nn.Linear(c5, 512)), ("relu6", nn.ReLU()),
        ("drop2", nn.Dropout(dropout)), ("fc2", nn.Linear(512, 512)), ("relu7", nn.ReLU()),
        ("fc3", nn.Linear(512, num_classes)),
    ]))


ARCHITECTURES = {"vanilla": vanilla_cnn, "alexnet": alexnet}


def cnn(arch: str, **kwargs) -> nn.Sequential:
    """The CNN named ``arch`` (one of :data:`ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[arch](**kwargs)


def reinitialise(model: nn.Module) -> nn.Module:
    """Every layer freshly initialised with PyTorch's defaults, in place (uses the global RNG)."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def fcn(model: nn.Module, input_shape=INPUT_SHAPE, kind: str = "fc") -> nn.Module:
    """The baseline "FCN of the same architecture": the eFCN (or eLCN, ``kind="lc"``) of
    ``model`` with every layer re-initialised by PyTorch's defaults, so it starts anywhere
    in FC space rather than in the CNN subspace."""
    with torch.no_grad():
        return reinitialise(embed(model, input_shape, kind))
