"""bf16 autocast against fp32 (the ``precision`` config field, issue 21), side by side in one run.

1. Speed: the training step of each role (CNN, eFCN, FCN; VanillaCNN, batch 250, SGD lr 0.1,
   exactly as ``needle_core.train.train_epoch``) in fp32 and under bf16 autocast, interleaved,
   medians of ``--reps``; the ratio fp32 ÷ bf16 is the speed-up.  On a CPU without bf16
   instructions (avx512_bf16, AMX) expect a slow-down; the CPU's flags are printed.
2. Effect: one seed of a small sweep (trunk CNN, its eFCN switched at ``--switch``, an FCN
   from scratch) trained twice into scratch stores, fp32 then bf16, from the same data and
   seed; each run's pre-registered read-out (test accuracy) and the eFCN's read-out δ
   (whole network) side by side, with the wall time of each sweep.

On a GPU (``--device cuda``) both parts run there.  bf16 is for exploring at scale: every
trained number changes, so published stores train in fp32 only (the sweep refuses bf16).

    python benchmarks/precision.py --dataset folder:data/cifar10-jpeg.tar.gz
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import Step, interleaved, make_data, make_role  # noqa: E402  (the same step, the same timing)

import needle_core.store  # noqa: E402
from needle_core import analysis  # noqa: E402
from needle_core.config import make_config  # noqa: E402
from needle_core.store import ResultStore  # noqa: E402
from needle_core.sweep import Sweep  # noqa: E402


def speed(roles: list[str], widths: list[int], reps: int, device: str) -> None:
    x, y = make_data(device)
    print(f"{'role':6} {'width':>5} {'fp32 s':>8} {'bf16 s':>8} {'fp32/bf16':>10}")
    for width in widths:
        for role in roles:
            variants = {p: Step(make_role(role, width).to(device), x, y,
                                autocast_dtype=None if p == "fp32" else torch.bfloat16) for p in ("fp32", "bf16")}
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            times = interleaved({k: (lambda s=s: (s(), sync())) for k, s in variants.items()}, reps,
                                time.perf_counter)
            fp32, bf16 = (statistics.median(times[p]) for p in ("fp32", "bf16"))
            print(f"{role:6} {width:>5} {fp32:>8.3f} {bf16:>8.3f} {fp32 / bf16:>9.2f}x", flush=True)


def effect(args) -> None:
    base = dict(dataset=args.dataset, widths=[args.width], n_trains=[args.n_train], n_test=args.n_test,
                seeds=[args.seed], epochs=args.epochs, switch_times=[args.switch], kinds=["fc"], baselines=["fcn"],
                batch_size=250, eval_points=6, device=args.device, threads=args.threads)
    reads, deltas, walls = {}, {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for precision in ("fp32", "bf16"):
            config = make_config("smoke", dict(base, precision=precision))
            start = time.perf_counter()
            frame = Sweep(config, Path(scratch) / precision).run(progress=False)
            walls[precision] = time.perf_counter() - start
            ends = analysis.readout(frame, "test_acc", config)
            reads[precision] = ends.set_index("role")["readout"]
            delta = analysis.readout(frame, "delta", config)
            deltas[precision] = float(delta[(delta["layer"] == "network") & (delta["role"] == "efcn")]["readout"].item())
            prov = ResultStore(Path(scratch) / precision).provenance()
            assert set(prov["precision"]) == {"torch.float32" if precision == "fp32"
                                              else "torch.float32 weights, bf16 autocast"}
    print(f"one seed ({args.seed}), VanillaCNN w{args.width}, {args.n_train} training images, {args.epochs} epochs, "
          f"eFCN from t_w {args.switch}; read-out = mean test accuracy over the last 20% of the epochs")
    print(f"{'network':10} {'fp32':>7} {'bf16':>7} {'bf16-fp32':>10}")
    for role in ("cnn", "efcn", "fcn"):
        a, b = reads["fp32"][role], reads["bf16"][role]
        print(f"{role:10} {a:>7.4f} {b:>7.4f} {b - a:>+10.4f}")
    print(f"{'eFCN δ':10} {deltas['fp32']:>7.4f} {deltas['bf16']:>7.4f} {deltas['bf16'] - deltas['fp32']:>+10.4f}")
    print(f"sweep wall time: fp32 {walls['fp32']:.0f} s, bf16 {walls['bf16']:.0f} s "
          f"(fp32/bf16 {walls['fp32'] / walls['bf16']:.2f}x; evaluation and δ included)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic", help="synthetic (default) or folder:path/to/cifar10")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--roles", default="CNN,eFCN,FCN")
    p.add_argument("--widths", default="32,64")
    p.add_argument("--width", type=int, default=32, help="the effect part's width")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--switch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-effect", dest="effect", action="store_false")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    flags = " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()) \
        if Path("/proc/cpuinfo").exists() else ""
    device = torch.cuda.get_device_name() if args.device == "cuda" else needle_core.store.machine()["cpu"]
    print(f"{device}, bf16 flags: {flags or 'none'}; torch {torch.__version__}, {args.threads} thread(s)")
    speed(args.roles.split(","), [int(w) for w in args.widths.split(",")], args.reps, args.device)
    if args.effect:
        effect(args)


if __name__ == "__main__":
    main()
