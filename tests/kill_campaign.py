"""Kill -9 at random moments, then resume (issue 20's first count), outside pytest:

    python tests/kill_campaign.py --kills 20 [--seed 0]

A small smoke sweep (trunk, eFCN at 1 and 2, controlled CNN, FCN; a resume point every
epoch) and its landscape are made once without interruption, then again into fresh stores
killed with SIGKILL at random moments (after the store exists) until they finish.  After
every kill the store must verify without damage; at the end its results, final weights and
landscape must equal the reference bit for bit.  Prints the counts.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SMALL = dict(epochs=3, seeds=[0], n_trains=[250], n_test=100, switch_times=[1, 2], kinds=["fc"], baselines=["fcn"],
             batch_size=50, lr_after=0.05, threads=1, checkpoint_minutes=0)


def command(kind: str, out: Path) -> list[str]:
    args = [sys.executable, "-m", "needle_core", kind, "--profile", "smoke", "--out", str(out)]
    for k, v in SMALL.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    if kind == "landscape":
        args += ["--switch-times", "1,2"]
    return args


def finish(kind: str, out: Path, rng: random.Random, kills: list, log: Path) -> None:
    from needle_core.store import ResultStore

    while True:
        with open(log, "ab") as stream:
            proc = subprocess.Popen(command(kind, out), cwd=REPO, stdout=stream, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, OMP_NUM_THREADS="1"))
        while proc.poll() is None and not (out / "manifest.json").exists():
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 4.0))
        if proc.poll() is not None:
            assert proc.returncode == 0, log.read_text()[-3000:]
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report = ResultStore(out).verify()
        assert not report["problems"], report["problems"]
        kills.append((kind, len(report["in_flight"]), len(report["leftovers"])))


def snapshot(out: Path):
    import torch

    from needle_core import landscape
    from needle_core.store import ResultStore

    frame = ResultStore(out).results().sort_values(["run", "epoch", "metric", "layer"]).reset_index(drop=True)
    weights = {str(p.relative_to(out)): torch.load(p, weights_only=True)["model"] for p in sorted(out.rglob("final.pt"))}
    return frame, weights, landscape.results(out)


def same(a, b) -> bool:
    import pandas as pd
    import torch

    try:
        pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
        pd.testing.assert_frame_equal(a[2], b[2], check_exact=True)
    except AssertionError:
        return False
    return a[1].keys() == b[1].keys() and all(
        a[1][k].keys() == b[1][k].keys() and all(torch.equal(a[1][k][n], b[1][k][n]) for n in a[1][k]) for k in a[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--landscape", action="store_true", help="also kill the landscape measurement (slow)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kills-"))
    log = work / "log.txt"
    try:
        ref = work / "ref"
        kinds = ("sweep", "landscape") if args.landscape else ("sweep",)
        for kind in kinds:
            subprocess.run(command(kind, ref), cwd=REPO, check=True, capture_output=True)
        reference = snapshot(ref)
        kills, stores, identical = [], 0, 0
        while len(kills) < args.kills:
            out = work / f"s{stores}"
            for kind in kinds:
                finish(kind, out, rng, kills, log)
            stores += 1
            identical += same(snapshot(out), reference)
            print(f"store {stores}: {len(kills)} kills so far, identical: {identical}/{stores}", flush=True)
        print(f"{len(kills)} kills (sweep {sum(k[0] == 'sweep' for k in kills)}, landscape "
              f"{sum(k[0] == 'landscape' for k in kills)}), every store verified without damage after each kill; "
              f"{identical} of {stores} resumed stores bit-identical to the uninterrupted one")
        return 0 if identical == stores else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
