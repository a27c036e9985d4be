"""The paper's architectures (paper.md §3): parameter counts of the CNNs and of their
eFCNs, the eFCN's layer sizes, and the FCN baseline."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import needle_core
from needle_core import FCConv, LCConv, embed, embedded_layers
from needle_core.models import INPUT_SHAPE


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_vanilla_cnn_counts_and_efcn_layer_sizes():
    cnn = needle_core.vanilla_cnn(ch=64)
    assert n_params(cnn) == 143_178
    efcn = embed(cnn, INPUT_SHAPE, "fc")
    assert n_params(efcn) == 110_606_602
    layers = dict(embedded_layers(efcn))
    assert list(layers) == ["conv1", "conv2", "conv3"]
    sizes = [tuple(layer.weight.shape[::-1]) for layer in layers.values()]  # (in, out)
    assert sizes == [(3888, 18496), (9216, 4096), (1600, 576)]
    assert (efcn.fc.in_features, efcn.fc.out_features) == (64, 10)
    # the maps of paper.md §3: 3x36x36 -> 64x17x17, pad 64x12x12 -> 64x8x8, pad 64x5x5 -> 64x3x3
    assert [(g.in_channels, *g.padded_hw, g.out_channels, *g.out_hw) for g in (layer.geometry for layer in layers.values())] == [
        (3, 36, 36, 64, 17, 17), (64, 12, 12, 64, 8, 8), (64, 5, 5, 64, 3, 3)]
    # dead weights: every row times the padding columns of the padded input
    assert [layer.dead_count() for layer in layers.values()] == [
        18496 * 3 * (36 * 36 - 32 * 32), 4096 * 64 * (12 * 12 - 8 * 8), 576 * 64 * (5 * 5 - 3 * 3)]
    x = torch.randn(2, *INPUT_SHAPE)
    with torch.no_grad():
        ref = cnn(x)
        assert float((efcn(x) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    # paper.md's "772x" (the ratio is 772.51: paper.md truncates here and rounds AlexNet's 83.9 to 84)
    assert abs(n_params(efcn) / n_params(cnn) - 772) < 1


def test_alexnet_counts():
    cnn = needle_core.alexnet()
    assert n_params(cnn) == 2_848_906
    assert [m.out_channels for m in cnn.modules() if isinstance(m, nn.Conv2d)] == [64, 192, 384, 256, 256]
    efcn = embed(cnn, INPUT_SHAPE, "fc")  # about 1 GB of float32
    assert n_params(efcn) == 239_049_674
    assert abs(n_params(efcn) / n_params(cnn) - 84) < 1
    assert [tuple(layer.weight.shape[::-1]) for _, layer in embedded_layers(efcn)] == [
        (3 * 36 * 36, 64 * 17 * 17), (64 * 12 * 12, 192 * 8 * 8), (192 * 5 * 5, 384 * 3 * 3),
        (384 * 5 * 5, 256 * 3 * 3), (256 * 5 * 5, 256 * 3 * 3)]
    cnn.eval(), efcn.eval()
    x = torch.randn(1, *INPUT_SHAPE)
    with torch.no_grad():
        ref = cnn(x)
        assert float((efcn(x) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


@pytest.mark.parametrize("arch", ["vanilla", "alexnet"])
def test_elcn_counts(arch):
    """eLCN: one kernel and one bias per output position."""
    cnn = needle_core.cnn(arch)
    elcn = embed(cnn, INPUT_SHAPE, "lc")
    expected = n_params(cnn)
    for _, layer in embedded_layers(elcn):
        g = layer.geometry
        per_position = g.in_channels // g.groups * g.kernel[0] * g.kernel[1] + 1
        expected += g.out_channels * g.out_hw[0] * g.out_hw[1] * per_position - g.out_channels * (per_position)
    assert n_params(elcn) == expected
    assert all(isinstance(layer, LCConv) for _, layer in embedded_layers(elcn))


@pytest.mark.parametrize("arch", ["vanilla", "alexnet"])
def test_models_run_on_cifar_shapes(arch):
    model = needle_core.cnn(arch, ch=8, num_classes=7)
    assert model(torch.randn(5, *INPUT_SHAPE)).shape == (5, 7)
    gray = needle_core.cnn(arch, ch=8, in_channels=1)
    assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="resnet"):
        needle_core.cnn("resnet")


@pytest.mark.parametrize("kind", ["fc", "lc"])
def test_fcn_baseline_is_the_efcn_architecture_freshly_initialised(kind):
    cnn = needle_core.vanilla_cnn(ch=8)
    efcn = embed(cnn, INPUT_SHAPE, kind)
    fcn = needle_core.fcn(cnn, kind=kind)
    assert [(n, type(m)) for n, m in fcn.named_modules()] == [(n, type(m)) for n, m in efcn.named_modules()]
    assert all(type(layer) is {"fc": FCConv, "lc": LCConv}[kind] for _, layer in embedded_layers(fcn))
    for (name, p), q in zip(efcn.named_parameters(), fcn.parameters()):
        assert p.shape == q.shape
        assert not torch.equal(p, q), name  # every layer re-initialised, the head included
    # PyTorch's default ranges: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the biases
    for _, layer in embedded_layers(fcn):
        fan_in = layer.weight.shape[1] if kind == "fc" else layer.weight[0, 0, 0].numel()
        assert float(layer.bias.detach().abs().max()) <= fan_in ** -0.5
        assert float(layer.weight.detach().abs().max()) <= fan_in ** -0.5
    # the CNN it came from is untouched
    assert all(torch.equal(a, b) for a, b in zip(cnn.state_dict().values(), needle_core.to_cnn(efcn).state_dict().values()))
