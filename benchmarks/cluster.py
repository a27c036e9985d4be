"""A sweep's wall time with the local executor against a LocalCluster of Dask workers.

    python benchmarks/cluster.py                       # the smoke profile, 2 workers
    python benchmarks/cluster.py --workers 4 --set epochs=3 --repeat 2

Each measurement is a fresh Python process that trains the whole sweep into a fresh result
folder:

* ``local``: ``needle_core.sweep.local_executor``, one run after another in this process,
  torch using every core (its default, ``threads=0``); with ``--local-threads N`` also
  with ``threads=N`` (``--local-threads 1`` separates the gain of running runs in parallel
  from the cost of one run's threads fighting over busy cores);
* ``dask``: ``needle_core.cluster.local_cluster(device="cpu", n_workers=W)``, W worker
  processes of one task each and ``cores // W`` torch threads each, runs in parallel as the
  graph allows (trunks first, then their branches).  Timed twice: the sweep alone, and
  with the cluster's start-up (processes, imports) included, as ``--executor dask``
  without ``--scheduler`` pays it.

Printed: both wall times, the CPU time each used (this process's for ``local``, the
workers' for ``dask``: CPU s / wall s is how many cores the sweep actually got), their ratio
(local / dask: above 1, the cluster is faster) and the machine's load average
(``os.getloadavg()``) before and after each measurement, since on a shared machine the
other processes move these numbers.  With ``--repeat`` > 1 the executors alternate and
the medians are compared.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd

from needle_core.cluster import DaskExecutor, cpu_count, local_cluster
from needle_core.config import make_config, parse_overrides
from needle_core.sweep import Sweep, graph


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, config, workers: int, rows_file: str) -> dict:
    """One measurement in this (fresh) process: ``local`` or ``dask``.  Writes the rows to
    ``rows_file``; returns wall time, wall time with start-up, CPU time, torch threads."""
    import torch

    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as root:
        if mode == "local":
            start, cpu = time.perf_counter(), cpu_seconds()
            results = Sweep(config, root).run(progress=False)
            wall = time.perf_counter() - start
            out = dict(wall=wall, total=wall, cpu=cpu_seconds() - cpu, threads=config.threads or torch.get_num_threads())
        else:
            from distributed import Client

            start = time.perf_counter()
            with local_cluster("cpu", n_workers=workers, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                ready, cpu = time.perf_counter(), client.run(cpu_seconds)
                results = Sweep(config, root, DaskExecutor(client)).run(progress=False)
                end, used = time.perf_counter(), client.run(cpu_seconds)
            out = dict(wall=end - ready, total=end - start, cpu=sum(used[w] - cpu[w] for w in used),
                       threads=max(1, cpu_count() // workers))
    results.to_parquet(rows_file)
    return out


def run_child(args, mode: str, threads: int, rows_file: str) -> dict:
    """``measure`` in a fresh Python process, so that no measurement inherits another's
    state (a nanny writes OMP_NUM_THREADS into its parent's environment, torch keeps its
    thread pool, caches stay warm)."""
    cmd = [sys.executable, __file__, "--profile", args.profile, "--workers", str(args.workers),
           "--measure", mode, "--rows", rows_file] + [a for kv in args.set for a in ("--set", kv)]
    if threads:
        cmd += ["--set", f"threads={threads}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="config override")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="measurements of each executor (alternating)")
    parser.add_argument("--local-threads", type=int, default=0,
                        help="also time the local executor with this many torch threads (default: not)")
    parser.add_argument("--measure", choices=["local", "dask"], help=argparse.SUPPRESS)  # one child measurement
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = make_config(args.profile, {"device": "cpu", **parse_overrides(args.set)})
    if args.measure:
        print(json.dumps(measure(args.measure, config, args.workers, args.rows)))
        return
    print(f"profile {config.name}: {len(graph(config))} runs, {config.epochs} epochs, {cpu_count()} cores; "
          f"{args.workers} dask workers x {max(1, cpu_count() // args.workers)} torch threads; "
          f"every measurement a fresh process and result folder")
    modes = [("local", 0, "local executor"), ("dask", 0, f"dask, {args.workers} workers")]
    if args.local_threads:
        modes.insert(1, ("local", args.local_threads, f"local, {args.local_threads} thread(s)"))
    times = {label: [] for *_, label in modes}
    with tempfile.TemporaryDirectory(prefix="bench-rows-") as tmp:
        for i in range(args.repeat):
            for mode, threads, label in modes:
                before = load()
                m = run_child(args, mode, threads, os.path.join(tmp, f"{mode}{threads}.parquet"))
                times[label].append(m)
                extra = f"({m['total']:.1f} s with cluster start-up)" if mode == "dask" else ""
                print(f"[{i}] {label:<22} {m['wall']:7.1f} s  {m['cpu']:6.1f} CPU s = {m['cpu'] / m['wall']:.2f} cores "
                      f"busy, {m['threads']} torch thread(s) each  {extra:<32} load {before} -> {load()}", flush=True)
        key = ["run", "epoch", "metric", "layer"]
        a, b = (pd.read_parquet(os.path.join(tmp, f)).sort_values(key).reset_index(drop=True)
                for f in ("local0.parquet", "dask0.parquet"))
    median = {label: (statistics.median(m["wall"] for m in ms), statistics.median(m["total"] for m in ms))
              for label, ms in times.items()}
    d, dt = median[modes[-1][2]]
    for mode, threads, label in modes[:-1]:
        lt = median[label][0]
        print(f"{label}: {lt:.1f} s; dask {d:.1f} s ({dt:.1f} s with start-up): ratio local/dask = {lt / d:.2f} "
              f"({lt / dt:.2f} with start-up)")
    print(f"{cpu_count()} cores, load average now {load()} (1/5/15 min)")
    same = a.drop(columns="value").equals(b.drop(columns="value"))
    diff = ((a["value"] - b["value"]).abs() / b["value"].abs().clip(lower=1e-12)).max() if same else float("nan")
    print(f"local executor and dask: same rows {same}, largest relative difference of a value {diff:.1e} "
          f"(exactly 0 only with the same torch thread count: --set threads=1)")


if __name__ == "__main__":
    main()
