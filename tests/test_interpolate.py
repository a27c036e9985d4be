"""Paths between networks in FC space (needle_core.interpolate): CPU, small models, random data."""
import math
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import needle_core as nc
from needle_core import interpolate as ip
from needle_core.train import evaluate

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models on shared cores: one intra-op thread avoids spinning on a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def norm(t):
    return t.detach().double().norm()


@pytest.fixture(scope="module")
def pair():
    """An embedded VanillaCNN(ch=4) (in the CNN subspace) and an FCN of the same architecture."""
    torch.manual_seed(0)
    cnn = nc.vanilla_cnn(ch=4)
    return nc.embed(cnn, SHAPE), nc.fcn(cnn, SHAPE)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(48, *SHAPE, generator=g), torch.randint(0, 10, (48,), generator=g)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(model, reference):
    return all(torch.equal(v, reference[k]) for k, v in model.state_dict().items()) and \
        model.state_dict().keys() == reference.keys()


def tiny_cnn(seed, channels=1, size=8, bn=False):
    torch.manual_seed(seed)
    layers = [("pad", nn.ZeroPad2d(1)), ("conv", nn.Conv2d(channels, 3, 3))]
    layers += [("bn", nn.BatchNorm2d(3))] if bn else []
    layers += [("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
               ("fc", nn.Linear(3 * (size // 2) ** 2, 2))]
    return nn.Sequential(OrderedDict(layers))


@pytest.mark.parametrize("method", ["linear", "curvilinear"])
def test_weight_paths_reproduce_endpoints_exactly(pair, method):
    a, b = pair
    sa, sb = state(a), state(b)
    path = getattr(ip, method)
    assert same(path(a, b, 0.0), sa)
    assert same(path(a, b, 1.0), sb)
    assert same(a, sa) and same(b, sb)  # the endpoints are never modified


def test_output_average_reproduces_endpoints_and_mixes_outputs_exactly(pair, data):
    a, b = pair
    x = data[0][:8]
    with torch.no_grad():
        ya, yb = a(x), b(x)
        assert torch.equal(ip.output_average(a, b, 0.0)(x), ya)
        assert torch.equal(ip.output_average(a, b, 1.0)(x), yb)
        for t in (0.3, 0.5):
            assert torch.equal(ip.output_average(a, b, t)(x), (1 - t) * ya + t * yb)


def test_linear_midpoint_is_the_average_and_out_is_reused(pair):
    a, b = pair
    mid = ip.linear(a, b, 0.5)
    pb = dict(b.named_parameters())
    for name, p in mid.named_parameters():
        q = dict(a.named_parameters())[name]
        torch.testing.assert_close(p, (q + pb[name]) / 2, rtol=0, atol=0)
    again = ip.linear(a, b, 0.25, out=mid)
    assert again is mid
    torch.testing.assert_close(dict(mid.named_parameters())["conv2.weight"],
                               0.75 * a.conv2.weight + 0.25 * b.conv2.weight)
    with pytest.raises(ValueError, match="out="):
        ip.linear(a, b, 0.5, out=a)


@pytest.mark.parametrize("direction", ["unit", "raw"])
def test_curvilinear_interpolates_norms_linearly(pair, direction):
    a, b = pair
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for t in (0.2, 0.5, 0.9):
        net = ip.curvilinear(a, b, t, direction=direction)
        for name, p in net.named_parameters():
            want = (1 - t) * norm(pa[name]) + t * norm(pb[name])
            torch.testing.assert_close(norm(p), want, rtol=1e-6, atol=0)
    # the direction, for direction="unit", is the normalised mix of the unit directions
    t = 0.5
    net = ip.curvilinear(a, b, t)
    ua, ub = a.conv1.weight.double() / norm(a.conv1.weight), b.conv1.weight.double() / norm(b.conv1.weight)
    mix = (ua + ub) / (ua + ub).norm()
    torch.testing.assert_close(net.conv1.weight.double() / norm(net.conv1.weight), mix, rtol=1e-5, atol=1e-9)


def test_curvilinear_handles_zero_tensors():
    a, b = nc.embed(tiny_cnn(0), (1, 8, 8)), nc.embed(tiny_cnn(1), (1, 8, 8))
    with torch.no_grad():
        a.conv.bias.zero_()          # zero in a only: the path is t·θb
        a.fc.bias.zero_()
        b.fc.bias.zero_()            # zero in both: stays zero
    net = ip.curvilinear(a, b, 0.3)
    torch.testing.assert_close(net.conv.bias, 0.3 * b.conv.bias)
    assert torch.equal(net.fc.bias, torch.zeros_like(net.fc.bias))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises(ValueError, match="outside"):
        ip.curvilinear(a, b, 1.5)


def test_buffers_are_interpolated():
    x = torch.randn(16, 1, 8, 8)
    a, b = tiny_cnn(0, bn=True), tiny_cnn(1, bn=True)
    a(x), b(x), b(x)  # different running statistics and counters
    a, b = nc.embed(a, (1, 8, 8)), nc.embed(b, (1, 8, 8))
    net = ip.linear(a, b, 0.25)
    torch.testing.assert_close(net.bn.running_mean, 0.75 * a.bn.running_mean + 0.25 * b.bn.running_mean)
    assert int(net.bn.num_batches_tracked) == int(a.bn.num_batches_tracked)  # nearer endpoint
    assert int(ip.linear(a, b, 0.75).bn.num_batches_tracked) == int(b.bn.num_batches_tracked)


@pytest.fixture(scope="module")
def toy():
    """Two networks trained apart on a learnable 2-class problem, and their training data."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()
    nets = []
    for seed in (0, 1):
        net = nc.fcn(tiny_cnn(seed), (1, 8, 8))
        opt = torch.optim.SGD(net.parameters(), lr=0.2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        nets.append(net)
    return nets[0], nets[1], x, y


def test_string_lowers_interior_loss_keeps_endpoints_and_is_deterministic(toy):
    a, b, x, y = toy
    sa, sb = state(a), state(b)
    n = 5
    before = [evaluate(ip.linear(a, b, i / (n - 1)), x, y)[0] for i in range(1, n - 1)]
    history = []
    points = ip.string(a, b, x, y, n_points=n, steps=40, lr=0.2, spring=0.5, batch_size=32,
                       generator=torch.Generator().manual_seed(3), history=history)
    assert len(points) == n and points[0] is a and points[-1] is b
    assert same(a, sa) and same(b, sb)
    after = [evaluate(p, x, y)[0] for p in points[1:-1]]
    assert np.mean(after) < 0.8 * np.mean(before), (before, after)
    assert len(history) == 40
    again = ip.string(a, b, x, y, n_points=n, steps=40, lr=0.2, spring=0.5, batch_size=32,
                      generator=torch.Generator().manual_seed(3))
    for p, q in zip(points, again):
        assert same(q, state(p))
    # spring only, no landscape: the linear path is already its own equilibrium
    still = ip.string(a, b, x, y, n_points=n, steps=3, lr=0.0, spring=1.0)
    for i, p in enumerate(still):
        for name, w in p.named_parameters():
            torch.testing.assert_close(w, dict(ip.linear(a, b, i / (n - 1)).named_parameters())[name])


def roughness(points):
    """Sum over interior points of the distance to the mean of their neighbours."""
    params = [dict(p.named_parameters()) for p in points]
    with torch.no_grad():
        return sum(float(torch.sqrt(sum(((params[i][k] - (params[i - 1][k] + params[i + 1][k]) / 2) ** 2).sum()
                                        for k in params[0])))
                   for i in range(1, len(points) - 1))


def test_string_spring_pulls_towards_neighbours(toy):
    a, b, x, y = toy
    loose = ip.string(a, b, x, y, n_points=5, steps=20, lr=0.2, spring=0.0, batch_size=32)
    tight = ip.string(a, b, x, y, n_points=5, steps=20, lr=0.2, spring=1.0, batch_size=32)
    assert roughness(tight) < 0.5 * roughness(loose)
    with pytest.raises(ValueError, match="spring"):
        ip.string(a, b, x, y, spring=2.0)


def test_scan_frame(pair, data):
    a, b = pair
    x, y = data
    a.train()
    frame = ip.scan(a, b, "linear", x, y, n_points=5)
    assert list(frame.columns) == ["t", "method", "metric", "value"]
    assert len(frame) == 10 and set(frame["metric"]) == {"loss", "accuracy"}
    assert sorted(frame["t"].unique()) == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert a.training  # evaluate ran in eval mode, scan put the mode back
    a.eval()
    loss0 = frame.query("t == 0 and metric == 'loss'")["value"].item()
    assert loss0 == evaluate(a, x, y)[0]
    mid = frame.query("t == 0.5 and metric == 'accuracy'")["value"].item()
    assert mid == evaluate(ip.linear(a, b, 0.5), x, y)[1]
    avg = ip.scan(a, b, "output_average", x, y, n_points=3)
    assert avg.query("t == 1 and metric == 'loss'")["value"].item() == evaluate(b, x, y)[0]
    assert ip.scan(a, b, "curvilinear", x, y, ts=[0.0, 1.0])["value"].notna().all()
    points = ip.string(a, b, x, y, n_points=3, steps=1, batch_size=16)
    strung = ip.scan(a, b, "string", x, y, points=points)
    assert sorted(strung["t"].unique()) == [0, 0.5, 1] and set(strung["method"]) == {"string"}
    with pytest.raises(ValueError, match="method"):
        ip.scan(a, b, "cubic", x, y)


def test_barrier():
    t = np.linspace(0, 1, 11)
    flat = pd.DataFrame({"t": t, "method": "linear", "metric": "loss", "value": (1 - t) * 2.0 + t * 0.5})
    assert ip.barrier(flat) == pytest.approx(0.0, abs=1e-12)
    bump = flat.assign(value=flat["value"] + np.sin(np.pi * t))  # +1 at the middle
    assert ip.barrier(bump) == pytest.approx(1.0)
    both = pd.concat([flat, bump.assign(method="curvilinear")])
    with pytest.raises(ValueError, match="several methods"):
        ip.barrier(both)
    assert ip.barrier(both, method="curvilinear") == pytest.approx(1.0)
    assert math.isnan(ip.barrier(flat.assign(value=np.where(t == 0.5, np.nan, flat["value"]))))


def test_mismatched_models_raise(pair):
    a, _ = pair
    torch.manual_seed(0)
    narrow = nc.embed(nc.vanilla_cnn(ch=2), SHAPE)
    with pytest.raises(ValueError, match=r"shapes differ: conv1\.weight"):
        ip.linear(a, narrow, 0.5)
    lc = nc.embed(nc.vanilla_cnn(ch=4), SHAPE, kind="lc")
    for method in (ip.curvilinear, ip.output_average):
        with pytest.raises(ValueError, match="conv1.weight"):
            method(a, lc, 0.5)
    other = tiny_cnn(0)
    with pytest.raises(ValueError, match=r"only in a: .*conv1\.weight.*only in b: .*conv\.weight"):
        ip.scan(a, other, "linear", torch.zeros(1, *SHAPE), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="dtypes differ"):
        ip.string(a, nc.embed(nc.vanilla_cnn(ch=4), SHAPE).double(), None, None)


# -- trained curves, the stopping rule, weight matching (issue 18) ------------------------------

def test_bezier_starts_as_the_straight_line_and_keeps_its_endpoints(pair, data):
    a, b = pair
    bend = ip.bend_init(a, b)
    for t in (0.0, 1.0):
        assert same(ip.bezier(a, b, bend, t), state(a if t == 0 else b))
    for t in (0.3, 0.5):
        curve, line = dict(ip.bezier(a, b, bend, t).named_parameters()), ip.linear(a, b, t)
        for name, w in line.named_parameters():
            torch.testing.assert_close(curve[name], w)
    x, y = data
    frame = ip.scan(a, b, "bezier", x, y, ts=[0, 0.5, 1], bend=bend)
    assert frame["value"].tolist() == pytest.approx(ip.scan(a, b, "linear", x, y, ts=[0, 0.5, 1])["value"].tolist())
    with pytest.raises(TypeError, match="bend"):
        ip.scan(a, b, "bezier", x, y)


def test_plateau_rule():
    rule = ip.Plateau(tolerance=0.01, patience=2)
    assert [rule.update(v) for v in (2.0, 1.5, 1.495, 1.2, 1.19, 1.189)] == [False, False, False, False, False, True]
    assert ip.Plateau().update(float("nan")) is True
    with pytest.raises(ValueError):
        ip.Plateau(patience=0)


def test_train_curve_lowers_the_barrier_keeps_endpoints_and_is_deterministic(toy):
    a, b, x, y = toy
    sa, sb = state(a), state(b)
    kwargs = dict(lr=0.5, batch_size=32, max_steps=300, check_every=30, generator=torch.Generator().manual_seed(3))
    bend, trace = ip.train_curve(a, b, x, y, **kwargs)
    assert same(a, sa) and same(b, sb)
    assert list(trace.columns) == ["check", "step", "t", "loss", "stopped"]
    assert trace.groupby("check").size().eq(11).all() and trace["step"].iloc[0] == 0
    first, last = trace.groupby("check")["loss"].max().iloc[[0, -1]]
    assert last < first
    line = pd.DataFrame({"t": trace.t[trace.check == 0], "method": "m", "metric": "loss",
                         "value": trace.loss[trace.check == 0]})
    curve = ip.scan(a, b, "bezier", x, y, ts=np.linspace(0, 1, 11), bend=bend)
    assert ip.barrier(curve) < ip.barrier(line)
    steps = trace["step"].max()
    assert trace["stopped"].any() or steps == 300  # the rule, or else the budget, stopped it
    again, trace2 = ip.train_curve(a, b, x, y, **dict(kwargs, generator=torch.Generator().manual_seed(3)))
    assert same(again, state(bend)) and trace2.equals(trace)


def test_curve_moves_only_live_trainable_weights(pair, data):
    a, b = pair
    x, y = data
    frozen = {n: p.requires_grad for n, p in a.named_parameters()}
    for net in (a, b):
        net.fc.bias.requires_grad_(False)
    try:
        bend, _ = ip.train_curve(a, b, x, y, lr=0.5, batch_size=16, max_steps=3, check_every=3)
    finally:
        for net in (a, b):
            net.fc.bias.requires_grad_(frozen["fc.bias"])
    mid = ip.linear(a, b, 0.5)
    torch.testing.assert_close(bend.fc.bias, mid.fc.bias)  # frozen: stays on the straight line
    layer = bend.conv1
    dead = ~layer.geometry.alive.reshape(-1)
    cols = lambda w: w.view(w.shape[0], layer.geometry.in_channels, -1)[:, :, dead]  # noqa: E731
    assert dead.any()
    torch.testing.assert_close(cols(bend.conv1.weight), cols(mid.conv1.weight))  # padding-connected: no gradient
    assert not torch.equal(bend.conv1.weight, mid.conv1.weight)


def test_curves_refuse_batchnorm():
    a, b = tiny_cnn(0, bn=True), tiny_cnn(1, bn=True)
    a, b = nc.embed(a, (1, 8, 8)), nc.embed(b, (1, 8, 8))
    with pytest.raises(NotImplementedError, match="running statistics"):
        ip.train_curve(a, b, torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long), lr=0.1, batch_size=2,
                       max_steps=1, check_every=1)


def test_string_stops_when_its_check_says_so(toy):
    a, b, x, y = toy
    calls = []

    def check(step, points):
        calls.append((step, len(points)))
        return step >= 10

    ip.string(a, b, x, y, n_points=4, steps=100, lr=0.2, batch_size=32, check=check, check_every=5)
    assert calls == [(0, 4), (5, 4), (10, 4)]


def test_weight_matching_undoes_a_permutation_and_keeps_the_function(pair, data):
    a, b = pair
    x, _ = data
    g = torch.Generator().manual_seed(5)
    perms = [torch.randperm(4, generator=g) for _ in range(3)]  # VanillaCNN: 3 hidden layers of 4 channels
    shuffled = ip.permute(a, perms)
    with torch.no_grad():
        torch.testing.assert_close(shuffled.eval()(x), a.eval()(x), rtol=1e-5, atol=1e-5)
    assert not same(shuffled, state(a))
    assert same(ip.align(a, shuffled, x), state(a))  # weight matching finds the permutation back
    aligned = ip.align(a, b, x)  # a function-preserving permutation of b, closer to a
    distance = lambda m: sum(float(((p - q).detach() ** 2).sum()) for p, q in zip(a.parameters(), m.parameters()))  # noqa
    assert distance(aligned) <= distance(b)
    with pytest.raises(NotImplementedError, match="fc"):
        ip.weight_matching(nc.vanilla_cnn(ch=4), nc.vanilla_cnn(ch=4))
