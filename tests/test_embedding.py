"""needle_core.embed: exactness on a grid of conv geometries, the adjoint identity, the
input model left untouched, and the errors (GitHub issue "needle_core foundations").

Everything on CPU and small: a case is one or a few convs on maps of a few pixels.
"""
from __future__ import annotations

import copy
import random
import warnings

import pytest
import torch
from torch import nn

import needle_core
from needle_core import EmbeddingError, FCConv, LCConv, embed, embedded_layers

KINDS = ["fc", "lc"]
LAYER_TYPE = {"fc": FCConv, "lc": LCConv}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Max absolute error relative to the largest output."""
    got, ref = got.detach(), ref.detach()
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-300))


# --- models that are not one Sequential -------------------------------------------------
class Residual(nn.Module):
    """conv-BN-ReLU-conv plus a strided 1x1 skip conv: a residual block, not a Sequential."""

    def __init__(self, dim=2):
        super().__init__()
        conv, bn = (nn.Conv1d, nn.BatchNorm1d) if dim == 1 else (nn.Conv2d, nn.BatchNorm2d)
        self.conv1 = conv(3, 4, 3, stride=2, padding=1, bias=False)
        self.bn = bn(4)
        self.conv2 = conv(4, 4, 3, padding="same", padding_mode="reflect")
        self.skip = conv(3, 4, 1, stride=2)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        y = self.conv2(torch.relu(self.bn(self.conv1(x))))
        y = torch.relu(y + self.skip(x))
        return self.head(y.flatten(2).mean(-1))


class SharedConv(nn.Module):
    """One conv used on two paths (the original map and its mirror image), then a second
    conv inside a nested container."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(1, 0))
        self.blocks = nn.ModuleDict({"post": nn.ModuleList([nn.ReLU(), nn.Conv2d(3, 2, 2, dilation=2)])})

    def forward(self, x):
        y = self.conv(x) + 0.5 * self.conv(torch.flip(x, [-1]))
        for m in self.blocks["post"]:
            y = m(y)
        return y


class SharedMixedPadding(nn.Module):
    """One conv read on a zero-padded crop of the map and on the map itself: a padded
    position is a padding zero on one path only, so it is a live input."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d(1)
        self.conv = nn.Conv2d(2, 3, 3)

    def forward(self, x):
        return self.conv(x) + self.conv(self.pad(x[:, :, 1:-1, 1:-1]))


class SharedAlias(nn.Module):
    """The same conv registered under two names (two paths in the module tree)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = self.a
        self.pad = nn.ZeroPad2d(1)

    def forward(self, x):
        return self.b(torch.relu(self.a(self.pad(x))))


def seq(*mods):
    return nn.Sequential(*mods)


# id -> (builder, input shape without batch).  Each named case isolates one feature.
NAMED = {
    "pad-int": (lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 6, 7)),
    "pad-tuple": (lambda: nn.Conv2d(3, 4, (3, 5), padding=(2, 1)), (3, 6, 7)),
    "pad-same-odd": (lambda: nn.Conv2d(3, 4, 3, padding="same"), (3, 5, 6)),
    "pad-same-even-dilated": (lambda: nn.Conv2d(3, 4, (4, 2), padding="same", dilation=(1, 3)), (3, 6, 8)),
    "pad-valid": (lambda: nn.Conv2d(3, 4, 3, padding="valid"), (3, 6, 5)),
    "zeropad-layer": (lambda: seq(nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(3, 4, 3)), (3, 5, 6)),
    "constpad-zero": (lambda: seq(nn.ConstantPad2d(2, 0.0), nn.Conv2d(3, 4, 3, stride=2)), (3, 5, 6)),
    "constpad-nonzero": (lambda: seq(nn.ConstantPad2d((1, 1, 2, 0), 0.7), nn.Conv2d(3, 4, 3)), (3, 5, 6)),
    "zeropad1d-before-conv2d": (lambda: seq(nn.ZeroPad1d((2, 1)), nn.Conv2d(3, 4, 3)), (3, 5, 6)),
    "zeropad2d-then-constpad1d": (lambda: seq(nn.ZeroPad2d(1), nn.ConstantPad1d((0, 2), 0.0), nn.Conv2d(3, 4, 3)), (3, 5, 6)),
    "zeropad-and-internal-pad": (lambda: seq(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3, padding=2)), (3, 4, 5)),
    "stride-nonsquare": (lambda: nn.Conv2d(3, 5, (2, 4), stride=(3, 1)), (3, 7, 11)),
    "stride-gt-kernel": (lambda: nn.Conv2d(2, 3, 2, stride=3), (2, 8, 8)),
    "kernel-1x1": (lambda: nn.Conv2d(3, 4, 1), (3, 4, 5)),
    "kernel-whole-map": (lambda: nn.Conv2d(3, 4, (4, 5)), (3, 4, 5)),
    "dilation": (lambda: nn.Conv2d(2, 3, 3, dilation=(2, 3), padding=(1, 2)), (2, 7, 8)),
    "groups": (lambda: nn.Conv2d(4, 6, 3, groups=2, stride=2, padding=1), (4, 6, 7)),
    "depthwise": (lambda: nn.Conv2d(3, 3, 3, groups=3, padding=1), (3, 5, 6)),
    "depthwise-multiplier": (lambda: nn.Conv2d(3, 6, (2, 3), groups=3, stride=(1, 2)), (3, 5, 7)),
    "no-bias": (lambda: nn.Conv2d(3, 4, 3, padding=1, bias=False), (3, 5, 6)),
    "reflect": (lambda: nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="reflect"), (2, 5, 6)),
    "replicate": (lambda: nn.Conv2d(2, 3, (2, 3), padding=2, padding_mode="replicate", stride=2), (2, 5, 6)),
    "circular": (lambda: nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="circular", dilation=2), (2, 5, 6)),
    "circular-same": (lambda: nn.Conv2d(2, 3, 4, padding="same", padding_mode="circular"), (2, 5, 6)),
    "zeropad-then-reflect": (lambda: seq(nn.ZeroPad2d(1), nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")), (2, 4, 5)),
    "reflectpad-layer": (lambda: seq(nn.ReflectionPad2d((1, 0, 2, 1)), nn.Conv2d(2, 3, 3)), (2, 4, 5)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3), (3, 9)),
    "conv1d-stride-dil-pad": (lambda: nn.Conv1d(3, 4, 3, stride=2, dilation=2, padding=3), (3, 11)),
    "conv1d-groups-nobias": (lambda: nn.Conv1d(4, 6, 2, groups=2, bias=False), (4, 7)),
    "conv1d-same-even": (lambda: nn.Conv1d(2, 3, 4, padding="same"), (2, 9)),
    "conv1d-reflect": (lambda: nn.Conv1d(2, 3, 3, padding=2, padding_mode="reflect"), (2, 6)),
    "conv1d-replicate": (lambda: nn.Conv1d(2, 3, 3, padding=1, padding_mode="replicate"), (2, 6)),
    "conv1d-circular": (lambda: nn.Conv1d(2, 3, 3, padding=2, padding_mode="circular", stride=2), (2, 6)),
    "conv1d-zeropad-layer": (lambda: seq(nn.ZeroPad1d((2, 1)), nn.Conv1d(2, 3, 3)), (2, 6)),
    "conv1d-constpad-layer": (lambda: seq(nn.ConstantPad1d(1, 0.0), nn.Conv1d(2, 3, 2, stride=2)), (2, 7)),
    "stack": (lambda: seq(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 5, 2, padding=1, padding_mode="reflect"), nn.Tanh(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3)),
              (3, 6, 6)),
    "residual": (Residual, (3, 8, 7)),
    "residual-1d": (lambda: Residual(dim=1), (3, 9)),
    "shared-conv": (SharedConv, (2, 7, 8)),
    "shared-mixed-padding": (SharedMixedPadding, (2, 6, 6)),
    "shared-alias": (SharedAlias, (2, 4, 5)),
    "vanilla-cnn": (lambda: needle_core.vanilla_cnn(ch=4), (3, 32, 32)),
    "alexnet": (lambda: needle_core.alexnet(ch=2), (3, 32, 32)),
}


def _random_config(seed: int) -> dict:
    """A random single-conv geometry (with maybe a padding layer before it) that PyTorch
    accepts on the drawn input size."""
    r = random.Random(seed)
    while True:
        dim = r.choice([1, 2, 2])
        groups = r.choice([1, 1, 2, 3])
        cg, og = (1, r.randint(1, 2)) if r.random() < 0.25 else (r.randint(1, 3), r.randint(1, 3))
        kernel = (r.randint(1, 4), r.randint(1, 5)) if dim == 2 else (r.randint(1, 5),)
        stride = tuple(r.randint(1, 3) for _ in kernel)
        dilation = tuple(r.choice([1, 1, 2, 3]) for _ in kernel)
        padding = r.choice(["int", "tuple", "same", "valid"])
        if padding == "same":
            stride = (1,) * dim
        padding = {"int": r.randint(0, 3), "tuple": tuple(r.randint(0, 3) for _ in kernel)}.get(padding, padding)
        cfg = dict(dim=dim, in_channels=groups * cg, out_channels=groups * og, kernel_size=kernel, stride=stride,
                   dilation=dilation, groups=groups, padding=padding, bias=r.random() < 0.7,
                   padding_mode=r.choice(["zeros", "zeros", "reflect", "replicate", "circular"]),
                   prepad=r.choice([None, None, "zero", "const0", "const"]),
                   prepad_sizes=tuple(r.randint(0, 2) for _ in range(2 * dim)),
                   hw=(r.randint(3, 10), r.randint(3, 12)) if dim == 2 else (r.randint(3, 14),))
        try:
            model = _build_random(cfg)
            model(torch.zeros(1, cfg["in_channels"], *cfg["hw"]))
        except (RuntimeError, ValueError, NotImplementedError):
            continue
        return cfg


def _build_random(cfg: dict) -> nn.Module:
    args = {k: v for k, v in cfg.items() if k not in ("dim", "prepad", "prepad_sizes", "hw")}
    conv = (nn.Conv1d if cfg["dim"] == 1 else nn.Conv2d)(**args)
    if cfg["prepad"] is None:
        return seq(conv)
    pad = {"zero": (nn.ZeroPad1d, nn.ZeroPad2d), "const0": (nn.ConstantPad1d, nn.ConstantPad2d),
           "const": (nn.ConstantPad1d, nn.ConstantPad2d)}[cfg["prepad"]][cfg["dim"] - 1]
    value = {"zero": (), "const0": (0.0,), "const": (-0.3,)}[cfg["prepad"]]
    return seq(pad(cfg["prepad_sizes"], *value), conv)


def _random_id(cfg: dict) -> str:
    return (f"{cfg['dim']}d-g{cfg['groups']}-k{cfg['kernel_size']}-s{cfg['stride']}-d{cfg['dilation']}-p{cfg['padding']}"
            f"-{cfg['padding_mode']}-pre{cfg['prepad']}{cfg['prepad_sizes'] if cfg['prepad'] else ''}"
            f"-{'b' if cfg['bias'] else 'nob'}-in{cfg['hw']}").replace(" ", "")


RANDOM = {f"rand{s:02d}-{_random_id(c)}": ((lambda c=c: _build_random(c)), (c["in_channels"], *c["hw"]))
          for s, c in ((s, _random_config(1000 + s)) for s in range(24))}
CASES = {**NAMED, **RANDOM}


def build(case: str, dtype=torch.float64) -> tuple[nn.Module, tuple[int, ...]]:
    builder, shape = CASES[case]
    torch.manual_seed(1)
    model = builder().to(dtype)
    with torch.no_grad():  # non-trivial biases and BN statistics
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return model.eval(), shape


def snapshot(model: nn.Module) -> dict:
    return dict(
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
        params={k: (v.data_ptr(), v.requires_grad) for k, v in model.named_parameters()},
        modules=[(n, type(m), m.training) for n, m in model.named_modules(remove_duplicate=False)],
        hooks=sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        attrs={n: sorted(vars(m)) for n, m in model.named_modules()},
    )


def assert_same_snapshot(before: dict, after: dict) -> None:
    assert before["modules"] == after["modules"]
    assert before["params"] == after["params"]
    assert before["hooks"] == after["hooks"]
    assert before["attrs"] == after["attrs"]
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


def n_convs(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules())


# --- 1. exactness -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_embedding_is_exact(case, kind, dtype):
    model, shape = build(case, dtype)
    before = snapshot(model)
    n = n_convs(model)
    emb = embed(model, shape, kind)
    assert_same_snapshot(before, snapshot(model))  # the input model is not modified

    layers = list(embedded_layers(emb))
    assert len(layers) == n and n > 0
    assert all(type(layer) is LAYER_TYPE[kind] for _, layer in layers)
    assert n_convs(emb) == 0
    assert all(p.dtype == dtype for p in emb.parameters())
    # nothing shared with the original: training the embedding cannot move the CNN
    ptrs = {p.data_ptr() for p in model.parameters()}
    assert not any(p.data_ptr() in ptrs for p in emb.parameters())

    x = torch.randn(3, *shape, dtype=dtype)
    with torch.no_grad():
        ref, got = model(x), emb(x)
    assert got.shape == ref.shape and got.dtype == dtype
    assert rel_err(got, ref) <= TOL[dtype]
    assert_same_snapshot(before, snapshot(model))


def test_embedding_a_bare_conv_returns_the_layer():
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    for kind in KINDS:
        layer = embed(conv, (2, 5, 5), kind)
        assert type(layer) is LAYER_TYPE[kind]
        x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
        assert rel_err(layer(x), conv(x)) <= 1e-10
        back = needle_core.to_cnn(layer)
        assert type(back) is nn.Conv2d
        assert torch.equal(back.weight, conv.weight) and torch.equal(back.bias, conv.bias)
    assert "" not in vars(conv)["_modules"]


def test_embedding_keeps_train_mode_and_batchnorm_statistics():
    model, shape = build("residual")
    model.train()
    before = snapshot(model)
    emb = embed(model, shape, "fc")
    assert_same_snapshot(before, snapshot(model))  # no BN update, train flags restored
    assert all(m.training for m in emb.modules())


# --- 2. the adjoint identity ------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_gradient_is_sum_of_copy_gradients(case, kind):
    """The CNN's gradient w.r.t. a kernel entry is the sum of the embedded layer's
    gradients over the copies of that entry (the chain rule through ``embed``)."""
    model, shape = build(case)
    emb = embed(model, shape, kind)
    x = torch.randn(4, *shape, dtype=torch.float64)
    r = torch.randn_like(model(x))
    (model(x) * r).sum().backward()
    (emb(x) * r).sum().backward()

    for name, layer in embedded_layers(emb):
        conv = model.get_submodule(name)
        g = type(layer).band_of(layer.geometry, layer.weight.grad)
        assert g.shape == layer.band.shape
        summed = g.sum((2, 3)).reshape(conv.weight.shape)
        assert rel_err(summed, conv.weight.grad) <= 1e-10, name
        if conv.bias is not None:
            gb = layer.bias.grad.view(*g.shape[:4]).sum((2, 3)).reshape(-1)
            assert rel_err(gb, conv.bias.grad) <= 1e-10, name
        else:
            assert layer.bias is None
    # every other parameter (Linear, BatchNorm) gets the same gradient as in the CNN
    emb_params = dict(emb.named_parameters())
    for name, p in model.named_parameters():
        owner = name.rpartition(".")[0]
        if not isinstance(model.get_submodule(owner) if owner else model, (nn.Conv1d, nn.Conv2d)):
            assert rel_err(emb_params[name].grad, p.grad) <= 1e-10, name


def test_band_is_a_view_of_the_weight():
    """Writing through ``layer.band`` writes every copy: doubling the band doubles the kernel."""
    torch.manual_seed(2)
    model = seq(nn.Conv2d(4, 6, 3, groups=2, stride=2, padding=1)).double()
    for kind in KINDS:
        layer = embed(model, (4, 6, 7), kind)[0]
        band = layer.band
        assert band.untyped_storage().data_ptr() == layer.weight.untyped_storage().data_ptr()
        band.mul_(2.0)
        doubled = copy.deepcopy(model)
        with torch.no_grad():
            doubled[0].weight.mul_(2.0)
        x = torch.randn(2, 4, 6, 7, dtype=torch.float64)
        with torch.no_grad():
            assert rel_err(layer(x), doubled(x)) <= 1e-10


# --- 5. errors --------------------------------------------------------------------------
class TwoSizes(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.body(self.pool(self.body(x)))


@pytest.mark.parametrize("bad, path, tname", [
    (lambda: seq(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Conv3d(2, 2, 1))), "1.1", "Conv3d"),
    (lambda: seq(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3)), "1", "ConvTranspose2d"),
])
def test_unsupported_layer_is_named(bad, path, tname):
    model = bad()
    with pytest.raises(EmbeddingError, match=rf"'{path}' \({tname}\)"):
        embed(model, (1, 6, 6))


@pytest.mark.parametrize("shape, path, tname", [
    ((3, 8, 8), "pool2", "MaxPool2d"),  # maps too small
    ((3, 48, 48), "fc", "Linear"),  # flattened size does not fit the head
    ((1, 32, 32), "conv1", "Conv2d"),  # wrong number of channels
])
def test_input_shape_that_does_not_fit_names_the_failing_module(shape, path, tname):
    model = needle_core.vanilla_cnn(ch=4)
    before = snapshot(model)
    with pytest.raises(EmbeddingError, match=rf"'{path}' \({tname}\)") as err:
        embed(model, shape)
    assert str(tuple(shape))[1:-1] in str(err.value)
    assert_same_snapshot(before, snapshot(model))  # hooks removed, modes restored after a failure


def test_unbatched_input_shape_is_refused():
    with pytest.raises(EmbeddingError, match=r"'0' \(Conv2d\)"):
        embed(seq(nn.Conv2d(3, 2, 3)), (5, 5))


def test_conv_called_at_two_sizes_is_refused():
    model = TwoSizes()
    before = snapshot(model)
    with pytest.raises(EmbeddingError, match=r"'body\.0' \(Conv2d\).*\(8, 8\).*\(4, 4\)"):
        embed(model, (2, 8, 8))
    assert_same_snapshot(before, snapshot(model))


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="xyz"):
        embed(seq(nn.Conv2d(1, 1, 3)), (1, 5, 5), kind="xyz")


# --- 6. networks nobody here wrote --------------------------------------------------------
class AudioNet(nn.Module):
    """An M5-style raw-audio classifier: strided Conv1d front end, a dilated residual
    block, a depthwise-separable block, global pooling."""

    def __init__(self):
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(1, 8, 16, stride=4), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(4))
        self.res = nn.Sequential(nn.Conv1d(8, 8, 3, padding=2, dilation=2), nn.BatchNorm1d(8), nn.ReLU(),
                                 nn.Conv1d(8, 8, 3, padding="same", padding_mode="reflect"))
        self.sep = nn.Sequential(nn.Conv1d(8, 8, 5, groups=8, stride=2, padding=2), nn.Conv1d(8, 12, 1))
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.front(x)
        x = torch.relu(x + self.res(x))
        return self.head(self.sep(x).mean(-1))


def _torchvision(name: str):
    from torchvision import models
    from torchvision.models.densenet import DenseNet
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    from torchvision.models.regnet import BlockParams, RegNet
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
    from torchvision.models.shufflenetv2 import ShuffleNetV2
    from torchvision.models.squeezenet import SqueezeNet

    def efficientnet():
        setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
        return EfficientNet(setting, 0.2, num_classes=10, last_channel=last)

    return {
        "resnet": lambda: ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10),
        "resnext": lambda: ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10, groups=4, width_per_group=4),
        "mobilenet_v2": lambda: models.mobilenet_v2(width_mult=0.25, num_classes=10),
        "mobilenet_v3": lambda: models.mobilenet_v3_small(width_mult=0.25, num_classes=10),
        "shufflenet": lambda: ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 64], num_classes=10),
        "squeezenet": lambda: SqueezeNet("1_1", num_classes=10),
        "densenet": lambda: DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=10),
        "efficientnet": efficientnet,
        "regnet": lambda: RegNet(BlockParams.from_init_params(depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=4),
                                 num_classes=10, stem_width=8),
    }[name]()


# small inputs keep every eFCN under ~20M float64 weights
ARCHITECTURES = {
    "resnet": (3, 12, 12), "resnext": (3, 8, 8), "mobilenet_v2": (3, 16, 16), "mobilenet_v3": (3, 16, 16),
    "shufflenet": (3, 16, 16), "squeezenet": (3, 17, 17), "densenet": (3, 16, 16), "efficientnet": (3, 16, 16),
    "regnet": (3, 16, 16), "audio-conv1d": (1, 256),
}


def build_architecture(name: str) -> nn.Module:
    torch.manual_seed(3)
    model = AudioNet() if name == "audio-conv1d" else _torchvision(name)
    model = model.double()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_real_architecture_is_exact_and_in_the_cnn_subspace(arch, kind):
    model, shape = build_architecture(arch), ARCHITECTURES[arch]
    before = snapshot(model)
    emb = embed(model, shape, kind)
    assert_same_snapshot(before, snapshot(model))
    assert n_convs(emb) == 0 and len(list(embedded_layers(emb))) == n_convs(model)

    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        assert rel_err(emb(x), ref) <= 1e-10
    assert float(needle_core.deviation(emb).delta.abs().max()) == 0.0
    projected = needle_core.project(emb)
    assert all(torch.equal(v, projected.state_dict()[k]) for k, v in emb.state_dict().items())
    back = needle_core.to_cnn(emb)
    assert back.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert rel_err(back(x), ref) <= 1e-12


# --- 7. the silent cases of GitHub issue 11: each now raises, or is exact -----------------
class WSConv2d(nn.Conv2d):
    """Weight-standardised conv: its forward uses a function of its weight."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return self._conv_forward(x, w, self.bias)


class SamePadConv2d(nn.Conv2d):
    """TF-style "same" padding applied in _conv_forward."""

    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(nn.functional.pad(x, (1, 1, 1, 1)), weight, bias)


class TaggedConv2d(nn.Conv2d):
    """A subclass that only adds an attribute: computes exactly an nn.Conv2d."""

    def __init__(self, *args, tag="x", **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag


def _qat_model():
    import torch.ao.quantization as quant

    model = seq(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.qconfig = quant.get_default_qat_qconfig("fbgemm")
    return quant.prepare_qat(model.train())


@pytest.mark.parametrize("make, match", [
    (lambda: seq(nn.ReLU(), WSConv2d(3, 4, 3)), r"'1' \(WSConv2d\) cannot be embedded: it overrides forward"),
    (lambda: seq(SamePadConv2d(3, 4, 3)), r"'0' \(SamePadConv2d\) cannot be embedded: it overrides _conv_forward"),
    (lambda: seq(torch.ao.nn.qat.Conv2d(3, 4, 3, qconfig=torch.ao.quantization.get_default_qat_qconfig("fbgemm"))),
     r"'0' \(Conv2d\) cannot be embedded: it is a quantisation module"),
    (_qat_model, r"cannot be embedded: it is a quantisation module"),
    (lambda: seq(nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 4, 3))),
     r"'0' \(ParametrizedConv2d\) cannot be embedded: it has parametrizations \(weight\)"),
    (lambda: seq(nn.utils.spectral_norm(nn.Conv2d(3, 4, 3))), r"'0' \(Conv2d\) .*weight that is not a Parameter"),
    (lambda: seq(nn.utils.weight_norm(nn.Conv2d(3, 4, 3))), r"'0' \(Conv2d\) .*weight that is not a Parameter"),
])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_convs_embed_cannot_see_through_are_refused_before_running(make, match, mode):
    model = make().train(mode == "train")
    before = snapshot(model)
    with pytest.raises(EmbeddingError, match=match):
        embed(model, (3, 8, 8))
    assert_same_snapshot(before, snapshot(model))  # observers, power-iteration vectors untouched


def test_a_subclass_that_keeps_forward_is_embedded():
    model = seq(TaggedConv2d(3, 4, 3, padding=1, tag="t")).double()
    emb = embed(model, (3, 6, 6))
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert rel_err(emb(x), model(x)) <= 1e-10


def test_conv_hooks_are_carried_over_and_back():
    model = seq(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3)).double()
    model[0].register_forward_hook(lambda module, inputs, output: 0.5 * output)  # output scaling
    model[2].register_forward_pre_hook(lambda module, inputs: (inputs[0] + 1.0,))
    grads = []
    model[2].register_full_backward_hook(lambda module, grad_in, grad_out: grads.append(grad_out[0].shape))
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    for net in (embed(model, (3, 6, 6)), needle_core.to_cnn(embed(model, (3, 6, 6), "lc"))):
        assert rel_err(net(x), model(x)) <= 1e-10
        net(x).sum().backward()
    assert grads == [(2, 2, 4, 4)] * 2


def test_a_hook_that_reads_the_conv_is_caught_by_the_proof():
    model = seq(nn.Conv2d(3, 4, 3)).double()
    model[0].register_forward_hook(lambda module, inputs, output: output * module.weight.abs().mean())
    with pytest.raises(EmbeddingError, match=r"'0' \(Conv2d\): its embedded layer's output differs .*<lambda>"):
        embed(model, (3, 6, 6))


@pytest.mark.parametrize("kind", KINDS)
def test_embedded_layer_refuses_inputs_of_another_size(kind):
    emb = embed(seq(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 10 * 18, 2)), (3, 12, 20), kind)
    emb(torch.randn(2, 3, 12, 20))
    for shape in [(2, 3, 20, 12), (2, 3, 16, 16), (3, 12, 20)]:  # same flattened size, another size, unbatched
        with pytest.raises(EmbeddingError, match=r"'0' \((FC|LC)Conv\) was embedded for inputs \(N, 3, 12, 20\)"):
            emb(torch.randn(*shape))


class ListHeld(nn.Module):
    def __init__(self, registered: bool):
        super().__init__()
        conv = nn.Conv2d(3, 4, 3)
        if registered:
            self.conv = conv
        self.convs = [conv]  # a plain list: not what embed replaces

    def forward(self, x):
        return self.convs[0](x)


class BoundMethod(nn.Module):
    def __init__(self, method: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.apply_conv = getattr(self.conv, method)

    def forward(self, x):
        return self.apply_conv(x)


class FunctionalConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight)


class UnfoldMatmul(nn.Module):
    def __init__(self):
        super().__init__()
        self.unfold = nn.Unfold(3)
        self.weight = nn.Parameter(torch.randn(4, 27))

    def forward(self, x):
        return self.weight @ self.unfold(x)


class ReadsConvWeight(nn.Module):
    """Calls its conv, and also uses its weight: the embedded model computes something else."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x) * self.conv.weight.abs().mean()


class FindsConvsByType(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.ModuleList([nn.Conv2d(3, 4, 3), nn.ReLU()])

    def forward(self, x):
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                x = m(x)
        return x


@pytest.mark.parametrize("make, match", [
    (lambda: ListHeld(registered=True), r"'conv' \(Conv2d\) is still called by the embedded model's forward"),
    (lambda: ListHeld(registered=False), r"a Conv2d called by module '<root>' \(ListHeld\) is not a registered"),
    (lambda: BoundMethod("__call__"), r"'conv' \(Conv2d\) is still called by the embedded model's forward"),
    (lambda: BoundMethod("forward"), r"'<root>' \(BoundMethod\) computes a convolution with torch.conv2d"),
    (FunctionalConv, r"'<root>' \(FunctionalConv\) computes a convolution with torch.conv2d outside a conv module"),
    (UnfoldMatmul, r"'unfold' \(Unfold\) computes a convolution with torch.nn.functional.unfold"),
    (lambda: torch.jit.trace(seq(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8)),
     r"\(TopLevelTracedModule\) cannot be embedded: it is scripted: scripted models cannot be embedded"),
    (lambda: torch.jit.script(seq(nn.Conv2d(3, 4, 3))), r"scripted models cannot be embedded"),
    (lambda: torch.compile(seq(nn.Conv2d(3, 4, 3))), r"\(OptimizedModule\).*embed `model._orig_mod`"),
    (ReadsConvWeight, r"'<root>' \(ReadsConvWeight\): the embedded model's output differs .* although every"),
    (FindsConvsByType, r"'body.0' \(Conv2d\) is called 1 time\(s\) by the model's forward, its embedded layer 0"),
])
def test_convs_forward_reaches_another_way_are_refused(make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation warnings
        model = make()
    with pytest.raises(EmbeddingError, match=match):
        embed(model, (3, 8, 8))


@pytest.mark.parametrize("inplace_op", [nn.Hardsigmoid(inplace=True), nn.ReLU(inplace=True)])
def test_in_place_op_between_padding_and_conv_makes_the_padding_live(inplace_op):
    model = seq(nn.ZeroPad2d(1), inplace_op, nn.Conv2d(3, 4, 3)).double()
    emb = embed(model, (3, 6, 6))
    assert needle_core.deviation(emb).n_dead.tolist() == [0, 0]
    assert needle_core.deviation(embed(seq(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3)), (3, 6, 6))).n_dead[0] > 0
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert rel_err(emb(x), model(x)) <= 1e-10


class CountsCalls(nn.Module):
    """A module that changes its own state in forward (a buffer counter) and uses the RNG."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        self.calls += 1
        return self.drop(self.bn(self.conv(x)))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_embed_changes_neither_the_model_nor_the_global_rng(mode):
    model = CountsCalls().train(mode == "train")
    before, rng = snapshot(model), torch.get_rng_state()
    emb = embed(model, (3, 8, 8), "lc")
    assert_same_snapshot(before, snapshot(model))
    assert torch.equal(rng, torch.get_rng_state())
    assert int(emb.calls) == 0 and all(m.training == (mode == "train") for m in emb.modules())


def test_frozen_convs_stay_frozen():
    model = seq(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    model[0].requires_grad_(False)
    model[1].bias.requires_grad_(False)
    for net in (embed(model, (3, 8, 8)), needle_core.to_cnn(embed(model, (3, 8, 8), "lc"))):
        assert {n: p.requires_grad for n, p in net.named_parameters()} == {
            "0.weight": False, "0.bias": False, "1.weight": True, "1.bias": False}


def test_tied_conv_weights_are_refused_and_one_shared_conv_stays_shared():
    a, b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
    b.weight = a.weight
    with pytest.raises(EmbeddingError, match=r"'0' \(Conv2d\) .*its weight is the same Parameter as '1.weight'"):
        embed(seq(a, b), (3, 6, 6))
    emb = embed(seq(a, nn.ReLU(), a), (3, 6, 6))
    assert emb[0] is emb[2]


@pytest.mark.parametrize("model, shape, match", [
    (lambda: embed(seq(nn.Conv2d(3, 4, 3)), (3, 8, 8)), (3, 8, 8), r"'0' \(FCConv\).*already embedded"),
    (lambda: seq(nn.Flatten(), nn.Linear(12, 2)), (3, 4), r"'<root>' \(Sequential\) has no Conv1d/Conv2d"),
    (lambda: seq(nn.Conv2d(3, 4, 3)), (3, 8.5, 8), r"input_shape=\(3, 8.5, 8\) must be a sequence of positive ints"),
    (lambda: seq(nn.Conv2d(3, 4, 3)), (3, 8.0, 8), r"must be a sequence of positive ints"),
    (lambda: seq(nn.Conv2d(3, 4, 3)), (3, 0, 8), r"must be a sequence of positive ints"),
    (lambda: seq(nn.Conv2d(3, 4, 3)), 8, r"must be a sequence of positive ints"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_arguments_raise(model, shape, match, kind):
    with pytest.raises(EmbeddingError, match=match):
        embed(model(), shape, kind)


# --- 8. the eLCN's cached matrix -----------------------------------------------------------
def test_elcn_matrix_is_cached_outside_training_and_follows_the_weight():
    model = seq(nn.Conv2d(3, 4, 3, padding=1)).double()
    layer = embed(model, (3, 6, 6), "lc")[0]
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        first = layer.dense_matrix()
        assert layer.dense_matrix() is first  # reused
        layer.weight.mul_(2.0)  # an in-place write: a new version of the weight
        assert layer.dense_matrix() is not first
        with torch.no_grad():
            model[0].weight.mul_(2.0)
        assert rel_err(layer(x), model(x)) <= 1e-10
    assert copy.deepcopy(layer)._dense is None  # copies leave the cache behind
    out = layer(x)  # with gradients: built for autograd, cache dropped
    assert out.requires_grad and layer._dense is None
    out.sum().backward()
    assert layer.weight.grad is not None


# --- 9. the dense writer, and what is too big to embed -------------------------------------
@pytest.mark.parametrize("windows", ["one", "per-channel"])
@pytest.mark.parametrize("case", list(CASES))
def test_write_dense_is_the_band_scatter_bit_for_bit(case, windows, monkeypatch):
    """embed writes each matrix in one pass (windows over a padded kernel): it must be exactly
    the zero matrix with the kernel scattered into its band, for every geometry; written over
    garbage (it writes every entry), and with one output channel per window."""
    from needle_core import layers as layers_module

    if windows == "per-channel":
        monkeypatch.setattr(layers_module, "WINDOW_BYTES", 1)
        monkeypatch.setattr(layers_module, "WINDOW_FRACTION", 10**12)
    model, shape = build(case)
    for _, layer in embedded_layers(embed(model, shape, "fc")):
        g = layer.geometry
        kernel = torch.randn(g.kernel_shape, dtype=torch.float64)
        ref = torch.zeros(g.out_features, g.in_features, dtype=torch.float64)
        FCConv.write_band(g, ref, kernel)
        out = torch.full_like(ref, float("nan"))
        layers_module.write_dense(g, out, kernel)
        assert torch.equal(out, ref)
        assert torch.equal(FCConv.embed_kernel(g, kernel), ref)
        layer.load_kernel(kernel, None if layer.bias is None else torch.zeros(g.out_channels, dtype=torch.float64))
        assert torch.equal(layer.weight.detach(), ref)


def _no_allocation(monkeypatch):
    """Make any allocation of an embedded layer fail the test."""
    def boom(*args, **kwargs):
        raise AssertionError("an embedded layer was allocated")
    for cls in (FCConv, LCConv):
        monkeypatch.setattr(cls, "from_conv", classmethod(boom))


def test_too_big_to_embed_is_refused_before_allocating(monkeypatch):
    """torchvision's ResNet-18 at 96x96: its eFCN's conv1 alone is 18.4 GB.  With 2 GB
    'available', embed refuses it, naming the total, the largest layers and what to do,
    before any layer is built; with 16 TB available the sizes pass the check."""
    torchvision = pytest.importorskip("torchvision")
    from needle_core import embedding

    model = torchvision.models.resnet18(num_classes=10)
    _no_allocation(monkeypatch)
    monkeypatch.setattr(embedding, "available_memory", lambda device: (2 * 10**9, "a test's limit"))
    with pytest.raises(EmbeddingError) as err:
        embed(model, (3, 96, 96))
    text = str(err.value)
    assert "too big to embed as an eFCN" in text and "Refused before allocating anything" in text
    assert "'conv1' (Conv2d 3x102x102 -> 64x48x48) 18.41 GB" in text  # the largest layer, by path
    assert "2.00 GB of memory is available (a test's limit" in text
    assert "smaller input_shape" in text and "sub-module" in text and "embedding_sizes" in text
    sizes = embedding.embedding_sizes(model, (3, 96, 96))
    assert sizes[0].path == "conv1" and sizes[0].dense == 64 * 48 * 48 * 3 * 102 * 102 * 4
    total = sum(s.dense for s in sizes) + sum(p.numel() for p in model.parameters()) * 4
    assert f"needs {embedding._bytes(total)}" in text
    with pytest.raises(EmbeddingError, match="as an eLCN"):  # its largest dense matrix does not fit either
        embed(model, (3, 96, 96), "lc")
    # enough memory: the check passes, and the first allocation is reached
    monkeypatch.setattr(embedding, "available_memory", lambda device: (16 * 10**12, "a test's limit"))
    with pytest.raises(AssertionError, match="was allocated"):
        embed(model, (3, 96, 96))


def test_elcn_is_offered_when_only_the_efcn_is_too_big(monkeypatch):
    from needle_core import embedding

    model = seq(*(nn.Conv2d(8, 8, 3, padding=1) for _ in range(4)))
    sizes = embedding.embedding_sizes(model, (8, 16, 16))
    dense, local = sum(s.dense for s in sizes), sum(s.local for s in sizes)
    limit = int(0.6 * dense)  # below the eFCN, above the eLCN's weights plus its largest matrix
    assert local + max(s.dense for s in sizes) + 10**4 < limit * embedding.MEMORY_FRACTION < dense
    monkeypatch.setattr(embedding, "available_memory", lambda device: (limit, "a test's limit"))
    with pytest.raises(EmbeddingError, match=r"kind='lc' \(an eLCN"):
        embed(model, (8, 16, 16), "fc")
    elcn = embed(model, (8, 16, 16), "lc")  # fits: and the proof kept no dense matrix
    assert all(layer._dense is None for _, layer in embedded_layers(elcn))


@pytest.mark.parametrize("kind", KINDS)
def test_embedding_sizes_are_the_embedded_parameters(kind):
    from needle_core.embedding import embedding_sizes, format_sizes

    model = needle_core.vanilla_cnn(8)
    sizes = embedding_sizes(model, (3, 32, 32))
    emb = embed(model, (3, 32, 32), kind)
    got = sum(p.numel() for _, layer in embedded_layers(emb) for p in layer.parameters()) * 4
    assert got == sum(s.dense if kind == "fc" else s.local for s in sizes)
    assert [s.path for s in sizes] == ["conv1", "conv2", "conv3"]
    table = format_sizes(sizes, (10**9, "here"))
    assert "conv2" in table and "8x12x12 -> 8x8x8" in table and "memory available: 1.00 GB (here)" in table


def test_sizes_command_allocates_nothing(capsys):
    """``python -m needle_core sizes``: the table, computed on the meta device."""
    from needle_core.cli import main

    assert main(["sizes", "--model", "alexnet", "--width", "8", "--input-shape", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "alexnet (width 8) on input (3, 32, 32)" in out and "conv5" in out and "memory available" in out
