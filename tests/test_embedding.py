"""needle_core.embed: exactness on a grid of conv geometries, the adjoint identity, the
input model left untouched, and the errors (GitHub issue "needle_core foundations").

Everything on CPU and small: a case is one or a few convs on maps of a few pixels.
"""
from __future__ import annotations

import copy
import random

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
