"""Cost of one trained curve (issue 18), one CPU thread: VanillaCNN w32 on 10,000 CIFAR-10
images, CNN trained 2 epochs then its eFCN 2 more, an FCN 4 epochs; then the quadratic
Bézier curve eFCN → FCN trained on 1,000 of those images (batch 250, lr 0.1) by the
pre-declared rule (11 points, 1% for 2 checks, every 100 steps, at most --max-steps), the
string (5 points) with the same rule, and weight matching.  Prints one JSON line; times are
CPU seconds of the process (one thread), which a busy shared machine does not inflate.

    python benchmarks/curve_cost.py --dataset folder:data/cifar10-jpeg.tar.gz
"""
import argparse
import json
import time

clock = time.process_time  # CPU seconds of this process: one thread, so the single-core cost on a shared machine

import numpy as np
import torch

import needle_core as nc
from needle_core import interpolate as ip
from needle_core.data import load
from needle_core.switch import switch
from needle_core.train import make_optimizer, train_epoch

p = argparse.ArgumentParser()
p.add_argument("--dataset", default="folder:data/cifar10-jpeg.tar.gz")
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--max-steps", type=int, default=2000)
p.add_argument("--check-every", type=int, default=100)
p.add_argument("--n-curve", type=int, default=1000)
p.add_argument("--string-steps", type=int, default=400)
args = p.parse_args()
torch.set_num_threads(1)
data = load(args.dataset, "data", n_train=10000, n_test=2000, seed=0)
torch.manual_seed(0)
model = nc.vanilla_cnn(ch=32)
opt = make_optimizer(model.parameters(), 0.1)
tick = clock()
for e in range(2):
    train_epoch(model, opt, data.x_train, data.y_train, 250, 0, e)
efcn, opt = switch(model, opt, data.input_shape, "fc")
for e in range(2, args.epochs):
    train_epoch(efcn, opt, data.x_train, data.y_train, 250, 0, e)
torch.manual_seed(1)
fcn = nc.fcn(nc.vanilla_cnn(ch=32), data.input_shape)
opt = make_optimizer(fcn.parameters(), 0.1)
for e in range(args.epochs):
    train_epoch(fcn, opt, data.x_train, data.y_train, 250, 1, e)
endpoints_s = clock() - tick
x, y = data.x_train[:args.n_curve], data.y_train[:args.n_curve]
out = dict(params=sum(p.numel() for p in fcn.parameters()), endpoints_s=endpoints_s)
tick = clock()
aligned = ip.align(efcn, fcn, x[:8])
out["align_s"] = clock() - tick
tick = clock()
bend, trace = ip.train_curve(efcn, fcn, x, y, lr=0.1, batch_size=250, max_steps=args.max_steps,
                             check_every=args.check_every)
out["curve_s"] = clock() - tick
per = trace.groupby("check").agg(step=("step", "first"), max_loss=("loss", "max"))
out["curve_steps"] = int(per["step"].max())
out["curve_stopped_by_rule"] = bool(trace["stopped"].any())
out["curve_trace"] = per["max_loss"].round(4).tolist()
lin = ip.path_losses(lambda t, o: ip.linear(efcn, fcn, t, out=o), x, y, np.linspace(0, 1, 11))
out["linear_losses"] = np.round(lin, 4).tolist()
out["curve_losses"] = trace[trace.check == trace.check.max()]["loss"].round(4).tolist()
trace_s, rule = [], ip.Plateau(0.01, 2)

def check(step, points):
    m = max(ip.path_losses(points, x, y))
    trace_s.append((step, round(m, 4)))
    return rule.update(m)

tick = clock()
ip.string(efcn, fcn, x, y, n_points=5, steps=args.string_steps, lr=0.1, spring=0.5, batch_size=250,
          check=check, check_every=args.check_every)
out["string_s"] = clock() - tick
out["string_trace"] = trace_s
print(json.dumps(out), flush=True)
