"""The eFCN's training step against the time of its matrix multiplications alone.

VanillaCNN (ch=64) embedded as an eFCN (110,606,602 parameters), a batch of 250 random
3x32x32 inputs with 10 random classes, cross-entropy, plain SGD (lr 0.1, no momentum), as
``needle_core.train.train_epoch`` does it: ``zero_grad(set_to_none=True)``, forward,
backward, ``step``.

The floor is the same GEMMs alone, at the same shapes, on the same data: for every FCConv
and Linear layer the forward ``F.linear`` (``(250 x in) @ (in x out)`` plus bias) and the two
backward matmuls, grad_input ``(250 x out) @ (out x in)`` and grad_weight
``(out x 250) @ (250 x in)``.  The first layer's grad_input is left out: its input needs no
gradient, so autograd never computes it.  Two floors are timed: writing into preallocated
outputs (``out=``, pure compute) and allocating the outputs as autograd does.

CPU (always): step and floors interleaved, medians (and minima) of ``--reps`` runs, then a
``torch.profiler`` breakdown of one step by operator.  Target: step <= 1.2x the floor.

GPU (when ``torch.cuda.is_available()``): data resident on the GPU, steps queued back to back
and timed with CUDA events (one synchronisation per measurement, none per step), in fp32,
TF32 and bf16 autocast, eager and ``torch.compile``; achieved TFLOP/s of the step against
the same GEMMs alone and against a large square GEMM in the same precision.  Target: >= 50%.

The exit code is always 0; each target prints PASS or FAIL.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import needle_core as nc
import needle_core.store
import needle_core.train
from needle_core.layers import FCConv

BATCH, CLASSES, LR = 250, 10, 0.1


def make_efcn(device="cpu") -> nn.Module:
    torch.manual_seed(0)
    return nc.embed(nc.vanilla_cnn(64), (3, 32, 32), "fc").to(device).train()


def make_data(device="cpu"):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 32, 32, generator=g)
    y = torch.randint(0, CLASSES, (BATCH,), generator=g)
    return x.to(device), y.to(device)


def gemm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (FCConv, nn.Linear))]


def step_flops(model: nn.Module) -> float:
    """Multiply-adds x2 of the step's GEMMs (the first layer has no grad_input)."""
    flops = 0.0
    for n, layer in enumerate(gemm_layers(model)):
        out_f, in_f = layer.weight.shape
        flops += 2.0 * BATCH * in_f * out_f * (3 if n else 2)
    return flops


class Step:
    """One SGD step of ``model``, exactly as needle_core.train.train_epoch does it."""

    def __init__(self, model, x, y, autocast_dtype=None, foreach=None, fused=None, compile_model=False):
        self.model = torch.compile(model) if compile_model else model
        self.x, self.y = x, y
        kwargs = {} if fused is None else dict(fused=fused)
        self.opt = torch.optim.SGD(model.parameters(), lr=LR, foreach=foreach, **kwargs)
        if autocast_dtype not in (None, torch.bfloat16):
            raise ValueError(f"autocast_dtype {autocast_dtype}: the sweeps know fp32 and bf16 only")
        precision = "fp32" if autocast_dtype is None else "bf16"
        self.autocast = lambda: needle_core.train.autocast(precision, x.device)  # the sweeps' own

    def __call__(self):
        with self.autocast():
            loss = F.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss


class Gemms:
    """The step's GEMMs alone, at the same shapes (``out=``: into preallocated outputs)."""

    def __init__(self, model, x, dtype=None, preallocate=True):
        dev = x.device
        dtype = dtype or x.dtype
        self.items = []
        for n, layer in enumerate(gemm_layers(model)):
            out_f, in_f = layer.weight.shape
            w = layer.weight.detach().to(dtype)
            b = torch.zeros(out_f, device=dev, dtype=dtype) if layer.bias is None else layer.bias.detach().to(dtype)
            a = torch.randn(BATCH, in_f, device=dev, dtype=dtype)
            gy = torch.randn(BATCH, out_f, device=dev, dtype=dtype)
            outs = (torch.empty(BATCH, out_f, device=dev, dtype=dtype), torch.empty(BATCH, in_f, device=dev, dtype=dtype),
                    torch.empty(out_f, in_f, device=dev, dtype=dtype)) if preallocate else None
            self.items.append((n == 0, w, b, a, gy, outs))

    def __call__(self):
        for first, w, b, a, gy, outs in self.items:
            if outs is None:
                F.linear(a, w, b)
                if not first:
                    torch.mm(gy, w)
                torch.mm(gy.t(), a)
            else:
                torch.addmm(b, a, w.t(), out=outs[0])
                if not first:
                    torch.mm(gy, w, out=outs[1])
                torch.mm(gy.t(), a, out=outs[2])


# -- CPU ---------------------------------------------------------------------------------------

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}  # glibc keeps freed memory

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def interleaved(variants: dict, reps: int, clock) -> dict[str, list[float]]:
    """The times of each variant over ``reps`` rounds, after one warm-up call each (first
    touch of every buffer, oneDNN/MKL init); each round starts at another variant, so a
    machine slowing down over the run biases none of them."""
    for fn in variants.values():
        fn()
    times = {k: [] for k in variants}
    order = list(variants)
    for rep in range(reps):
        for k in order[rep % len(order):] + order[:rep % len(order)]:
            gc.collect()
            times[k].append(timed(variants[k], clock))
    return times


def medians(variants: dict, reps: int, clock) -> dict[str, float]:
    """The median of :func:`interleaved`'s times of each variant."""
    return {k: statistics.median(v) for k, v in interleaved(variants, reps, clock).items()}


def profile_overhead(step: Step, gemms: Gemms, reps: int = 2) -> None:
    """Where the step's time beyond its GEMMs goes: ``torch.profiler`` self CPU time of
    ``reps`` steps against ``reps`` runs of the GEMMs alone, grouped by operator."""
    from torch.profiler import ProfilerActivity, profile

    def by_op(fn):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                fn()
        return {e.key: e.self_cpu_time_total / 1e3 / reps for e in prof.key_averages()}

    s, g = by_op(step), by_op(gemms)
    gemm = ("aten::mm", "aten::addmm")
    groups = [
        ("GEMMs (addmm, mm), as timed alone", None),
        ("GEMMs: extra inside the step", gemm),
        ("SGD update (add_ over every weight)", ("aten::add_", "aten::_foreach_add_")),
        ("zero_grad (frees the gradients)", ("Optimizer.zero_grad#SGD.zero_grad",)),
        ("max_pool2d (+ backward)", ("aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward")),
        ("relu (+ threshold_backward)", ("aten::relu", "aten::clamp_min", "aten::threshold_backward")),
        ("F.pad (fill_ + copy_), addmm's bias copy_", ("aten::fill_", "aten::copy_")),
    ]
    g_gemm = sum(g.get(k, 0.0) for k in gemm)
    total = sum(s.values())
    print(f"\nprofile (torch.profiler, self CPU time, mean of {reps}): step {total:.0f} ms, "
          f"its GEMMs alone {sum(g.values()):.0f} ms")
    used = set()
    for label, keys in groups:
        if keys is None:
            t = g_gemm
        elif keys is gemm:
            t = sum(s.get(k, 0.0) for k in gemm) - g_gemm
        else:
            t = sum(s.get(k, 0.0) for k in keys)
        used.update(keys or ())
        print(f"  {label:<44}{t:>9.1f} ms{100 * t / total:>6.1f}%")
    rest = sum(v for k, v in s.items() if k not in used)
    print(f"  {'everything else':<44}{rest:>9.1f} ms{100 * rest / total:>6.1f}%")


ROLES = ("CNN", "eFCN", "eLCN", "FCN")
WIDTHS = (32, 64)
EVAL_N = 1000  # one batch of evaluate() at the configs' eval_batch_size


def _roles(text: str) -> list[str]:
    """``--roles``: comma-separated names of :data:`ROLES`, any case ("efcn,fcn")."""
    names = {r.lower(): r for r in ROLES}
    unknown = [t for t in text.split(",") if t.lower() not in names]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(ROLES)}")
    return [names[t.lower()] for t in text.split(",")]


def make_role(role: str, width: int) -> nn.Module:
    """The VanillaCNN of ``width`` (seed 0) as one of the four networks the sweeps train."""
    torch.manual_seed(0)
    cnn = nc.vanilla_cnn(width)
    if role == "CNN":
        return cnn.train()
    if role == "FCN":
        return nc.fcn(cnn, (3, 32, 32)).train()
    return nc.embed(cnn, (3, 32, 32), "fc" if role == "eFCN" else "lc").train()


def products(role: str, width: int, batch: int) -> list[tuple[tuple, str]]:
    """The matrix products of one step of ``role`` on ``batch`` inputs: ``((m, k, n, ta, tb),
    phase)`` for ``(m x k) @ (k x n)``, phase "forward" or "backward"; ``ta``/``tb``: the
    operand is a transposed view, as autograd passes it (``F.linear`` multiplies by the
    weight's transpose, grad_weight by the output gradient's).

    A dense layer (eFCN, eLCN, FCN, every Linear) ``(out, in)``: forward ``(B x in) @ (in x
    out)``, grad_input ``(B x out) @ (out x in)`` (not for the first layer: its input needs no
    gradient), grad_weight ``(out x B) @ (B x in)``.  A conv (CNN) as its im2col GEMMs, with
    ``P = B*Ho*Wo`` rows and ``K = C*kh*kw``: ``(P x K) @ (K x O)``, ``(P x O) @ (O x K)``,
    ``(O x P) @ (P x K)``.  The eLCN's products are the eFCN's: it multiplies by the same
    dense matrix, which it scatters from its weights first (not a product: not counted).
    """
    torch.manual_seed(0)
    cnn = nc.vanilla_cnn(width)
    with torch.device("meta"):
        geoms = {path: layer.geometry for path, layer in nc.embedded_layers(nc.embed(cnn.to("meta"), (3, 32, 32)))}
    out = []
    first = True
    for path, module in cnn.named_modules():
        if path in geoms and role == "CNN":
            g = geoms[path]
            p, k, o = batch * g.out_hw[0] * g.out_hw[1], g.in_channels * g.kernel[0] * g.kernel[1], g.out_channels
            shapes = [((p, k, o, False, True), "forward"), ((p, o, k, False, False), "backward"),
                      ((o, p, k, True, False), "backward")]
        elif path in geoms or isinstance(module, nn.Linear):
            o, i = (geoms[path].out_features, geoms[path].in_features) if path in geoms else (
                module.out_features, module.in_features)
            shapes = [((batch, i, o, False, True), "forward"), ((batch, o, i, False, False), "backward"),
                      ((o, batch, i, True, False), "backward")]
        else:
            continue
        out += [shapes[0], shapes[2]] if first else shapes
        first = False
    return out


class Products:
    """Matrix products alone, in the layouts autograd uses, into preallocated outputs
    (``torch.mm(out=)``), float32."""

    def __init__(self, shapes):
        def operand(rows, cols, transposed):
            return torch.randn(cols, rows).t() if transposed else torch.randn(rows, cols)
        self.items = [(operand(m, k, ta), operand(k, n, tb), torch.empty(m, n)) for m, k, n, ta, tb in shapes]

    def __call__(self):
        for a, b, c in self.items:
            torch.mm(a, b, out=c)


def run_roles(args) -> None:
    """Step / its products and eval pass / its forward products, per role and width."""
    clock = CLOCKS[args.clock]
    x, y = make_data()
    g = torch.Generator().manual_seed(2)
    x_eval, y_eval = torch.randn(EVAL_N, 3, 32, 32, generator=g), torch.randint(0, CLASSES, (EVAL_N,), generator=g)
    rows = []
    for width in args.widths:
        for role in args.roles:
            model = make_role(role, width)
            step = Step(model, x, y)
            prods = products(role, width, BATCH)
            variants = {
                "step": step,
                "step products": Products([s for s, _ in prods]),
                "eval": lambda m=model: nc.train.evaluate(m, x_eval, y_eval, batch_size=EVAL_N),
                "eval products": Products([s for s, phase in products(role, width, EVAL_N) if phase == "forward"]),
            }
            med = medians(variants, args.reps, clock)  # warm-up includes the eLCN's cache
            params = sum(p.numel() for p in model.parameters())
            flops = 2.0 * sum(m * k * n for (m, k, n, _, _), _ in prods)
            rows.append((role, width, params, flops, med))
            print(f"  {role:<5} w{width}: step {med['step']:.3f} s, its products {med['step products']:.3f} s; "
                  f"eval {med['eval']:.3f} s, its products {med['eval products']:.3f} s", flush=True)
            del model, step, variants
            gc.collect()
    print(f"\nCPU: {nc.store.machine()['cpu']}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); VanillaCNN roles, "
          f"batch {BATCH}, SGD lr {LR}; eval: evaluate() on {EVAL_N} inputs; {args.clock} time, medians of "
          f"{args.reps} interleaved runs; glibc keeps freed memory as in training: {args.kept}")
    print(f"{'role':<6}{'width':>6}{'parameters':>14}{'GFLOP/step':>11}{'step s':>9}{'products s':>11}"
          f"{'step/prod':>10}{'eval s':>9}{'products s':>11}{'eval/prod':>10}")
    for role, width, params, flops, med in rows:
        print(f"{role:<6}{width:>6}{params:>14,}{flops / 1e9:>11.1f}{med['step']:>9.3f}{med['step products']:>11.3f}"
              f"{med['step'] / med['step products']:>9.2f}x{med['eval']:>9.3f}{med['eval products']:>11.3f}"
              f"{med['eval'] / med['eval products']:>9.2f}x")
    for role, width, _, _, med in rows:
        if role in ("eFCN", "FCN"):
            ratio = med["step"] / med["step products"]
            print(f"[{'PASS' if ratio <= 1.2 else 'FAIL'}] {role} w{width} step <= 1.2x its matrix products: "
                  f"{ratio:.2f}x")


def run_cpu_malloc_child(args) -> None:
    """The detail comparison again in a fresh process whose glibc keeps freed memory for reuse
    (set by environment, :data:`MALLOC_ENV`, as training sets it with mallopt)."""
    import subprocess
    import sys

    cmd = [sys.executable, os.path.abspath(__file__), "--detail-child", "--no-gpu", "--no-profile",
           "--reps", str(args.reps), "--clock", args.clock, "--threads", str(args.threads)] + (["--bf16"] if args.bf16 else [])
    print(f"\nthe same in a fresh process with {' '.join(f'{k}={v}' for k, v in MALLOC_ENV.items())} "
          "(glibc reuses freed memory instead of returning it to the kernel):")
    out = subprocess.run(cmd, env={**os.environ, **MALLOC_ENV}, capture_output=True, text=True)
    print("\n".join(line for line in out.stdout.splitlines() if line.strip()))
    if out.returncode:
        print(f"(failed with exit code {out.returncode}: {out.stderr.strip().splitlines()[-1:]})")


def run_cpu(args) -> None:
    clock = CLOCKS[args.clock]
    model = make_efcn()
    x, y = make_data()
    flops = step_flops(model)
    variants = {
        "training step": Step(model, x, y),
        "GEMMs alone (out=)": Gemms(model, x, preallocate=True),
        "GEMMs alone (allocating)": Gemms(model, x, preallocate=False),
    }
    if args.bf16:
        bf_model = copy.deepcopy(model)
        variants["training step, bf16 autocast"] = Step(bf_model, x, y, autocast_dtype=torch.bfloat16)
        variants["GEMMs alone, bf16 (out=)"] = Gemms(model, x, dtype=torch.bfloat16)
    times = interleaved(variants, args.reps, clock)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["GEMMs alone (out=)"]
    malloc = " ".join(f"{k}={os.environ[k]}" for k in MALLOC_ENV if k in os.environ) or "default glibc malloc"
    print(f"CPU ({malloc}): torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"VanillaCNN eFCN {sum(p.numel() for p in model.parameters()):,} parameters, batch {BATCH}, "
          f"{flops / 1e9:.1f} GFLOP per step; {args.clock} time, median (min) of {args.reps} interleaved runs")
    print(f"{'variant':<32}{'seconds':>18}{'GFLOP/s':>10}{'/ GEMMs (out=)':>16}")
    for k in variants:
        print(f"{k:<32}{med[k]:>9.3f} ({min(times[k]):6.3f}){flops / med[k] / 1e9:>10.1f}{med[k] / floor:>15.2f}x")
    ratio = med["training step"] / floor
    print(f"[{'PASS' if ratio <= 1.2 else 'FAIL'}] CPU training step <= 1.2x its GEMMs alone ({malloc}): {ratio:.2f}x "
          f"(min/min {min(times['training step']) / min(times['GEMMs alone (out=)']):.2f}x; "
          f"against the allocating GEMMs {med['training step'] / med['GEMMs alone (allocating)']:.2f}x)")
    if args.profile:
        profile_overhead(variants["training step"], variants["GEMMs alone (out=)"])


# -- GPU ---------------------------------------------------------------------------------------

def cuda_time(fn, iters: int, warmup: int) -> float:
    """Seconds per call of ``fn``, ``iters`` calls queued back to back between two CUDA events."""
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


@contextlib.contextmanager
def tf32(enabled: bool):
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def square_peak(dtype, n: int = 8192, iters: int = 20) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    c = torch.empty(n, n, device="cuda", dtype=dtype)
    t = cuda_time(lambda: torch.mm(a, b, out=c), iters, 3)
    return 2.0 * n ** 3 / t


def run_gpu(args) -> None:
    dev = torch.device("cuda")
    x, y = make_data(dev)
    base = make_efcn(dev)
    flops = step_flops(base)
    print(f"\nGPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; {flops / 1e9:.1f} GFLOP per step; "
          f"{args.gpu_iters} steps per CUDA-event measurement, median of {args.gpu_reps}")
    configs = [  # (label, tf32, autocast dtype, gemm dtype, compile, fused SGD)
        ("fp32", False, None, torch.float32, False, False),
        ("tf32", True, None, torch.float32, False, False),
        ("tf32, fused SGD", True, None, torch.float32, False, True),
        ("bf16 autocast, fused SGD", True, torch.bfloat16, torch.bfloat16, False, True),
    ]
    if not args.no_compile:
        configs += [
            ("tf32, torch.compile, fused SGD", True, None, torch.float32, True, True),
            ("bf16 autocast, torch.compile, fused SGD", True, torch.bfloat16, torch.bfloat16, True, True),
        ]
    peaks = {}
    print(f"{'variant':<42}{'ms/step':>9}{'TFLOP/s':>9}{'GEMMs ms':>10}{'GEMM TF/s':>10}"
          f"{'step/GEMMs':>11}{'square TF/s':>12}{'step/square':>12}  >=50%")
    results = []
    for label, tf, ac, gdt, comp, fused in configs:
        try:
            with tf32(tf):
                key = (tf, gdt)
                if key not in peaks:
                    peaks[key] = square_peak(gdt)
                model = copy.deepcopy(base)
                step = Step(model, x, y, autocast_dtype=ac, fused=fused, compile_model=comp)
                gemms = Gemms(base, x, dtype=gdt)
                warm = 5 if comp else 2
                ts, tg = [], []
                for _ in range(args.gpu_reps):  # interleaved
                    ts.append(cuda_time(step, args.gpu_iters, warm))
                    tg.append(cuda_time(gemms, args.gpu_iters, warm))
                    warm = 1
                t_step, t_gemm = statistics.median(ts), statistics.median(tg)
                tf_step, tf_gemm, tf_sq = flops / t_step / 1e12, flops / t_gemm / 1e12, peaks[key] / 1e12
                results.append((label, tf_step, tf_step / tf_gemm))
                print(f"{label:<42}{t_step * 1e3:>9.3f}{tf_step:>9.1f}{t_gemm * 1e3:>10.3f}{tf_gemm:>10.1f}"
                      f"{tf_step / tf_gemm:>10.0%} {tf_sq:>11.1f}{tf_step / tf_sq:>11.0%}"
                      f"  {'PASS' if tf_step / tf_gemm >= 0.5 else 'FAIL'}")
                del model, step, gemms
                torch.cuda.empty_cache()
        except Exception as err:  # noqa: BLE001 - report and go on: the exit code is always 0
            print(f"{label:<42} failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
    if results:
        label, tflops, ratio = max(results, key=lambda r: r[1])
        print(f"[{'PASS' if ratio >= 0.5 else 'FAIL'}] GPU step >= 50% of its GEMMs' TFLOP/s, fastest variant "
              f"({label}, {tflops:.1f} TFLOP/s): {ratio:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Targets: CPU step <= 1.2x its matrix products alone for the eFCN and the "
                                            "FCN; GPU step >= 50% of the GEMMs' TFLOP/s. Exit code is always 0.")
    parser.add_argument("--reps", type=int, default=5, help="CPU repetitions of each variant (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1, as the CPU "
                        "campaign trains: one run per core)")
    parser.add_argument("--roles", type=_roles, default=list(ROLES),
                        help=f"comma-separated, of {','.join(ROLES)} (default: all)")
    parser.add_argument("--widths", type=lambda t: [int(v) for v in t.split(",")], default=list(WIDTHS),
                        help="comma-separated VanillaCNN widths (default 32,64)")
    parser.add_argument("--default-malloc", dest="kept", action="store_false",
                        help="leave glibc's malloc as it is (training calls needle_core.train.keep_freed_memory)")
    parser.add_argument("--detail", action="store_true",
                        help="then the eFCN w64 step in detail: GEMMs alone allocating or not, a torch.profiler "
                             "breakdown, and again in a fresh process with MALLOC_MMAP_MAX_=0")
    parser.add_argument("--bf16", action="store_true", help="with --detail: also bf16 autocast on the CPU")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default) or cpu: process CPU time, steadier on a shared machine")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--no-malloc", dest="malloc", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--no-cpu", dest="cpu", action="store_false", help="skip the CPU part")
    parser.add_argument("--no-gpu", dest="gpu", action="store_false", help="skip the GPU part")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants on the GPU")
    parser.add_argument("--gpu-iters", type=int, default=50, help="steps per CUDA-event measurement (default 50)")
    parser.add_argument("--gpu-reps", type=int, default=5, help="GPU measurements per variant (default 5)")
    parser.add_argument("--detail-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.detail_child:
        run_cpu(args)
        return
    if args.cpu:
        if args.kept:
            args.kept = nc.train.keep_freed_memory()
        run_roles(args)
        if args.detail:
            print()
            run_cpu(args)
            if args.malloc:
                run_cpu_malloc_child(args)
    if args.gpu:
        if torch.cuda.is_available():
            run_gpu(args)
        else:
            print("\nGPU: torch.cuda.is_available() is False: GPU part skipped.")


if __name__ == "__main__":
    main()
