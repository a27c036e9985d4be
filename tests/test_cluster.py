"""The Dask executor (needle_core.cluster): the same results as the local executor, a worker
killed mid-run changes nothing, the CLI path, and the layout of a local cluster.

One small sweep (smoke profile, 6 runs of 3 epochs, resume checkpoints at every epoch) is run
once with the local executor as the reference.  ``threads=1`` everywhere: CPU results are
bit-identical for the same torch thread count (a different one changes float rounding; the
field is not part of the config digest).
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from needle_core import cli  # noqa: E402
from needle_core.cluster import DaskExecutor, executing, make_executor, worker_plan  # noqa: E402
from needle_core.config import make_config  # noqa: E402
from needle_core.store import ResultStore  # noqa: E402
from needle_core.sweep import Sweep, graph, local_executor  # noqa: E402

OVERRIDES = dict(epochs=3, seeds=[0], n_trains=[250], n_test=250, switch_times=[0, 1], checkpoint_minutes=0,
                 threads=1)
CONFIG = make_config("smoke", OVERRIDES)
KEY = ["run", "epoch", "metric", "layer"]


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def assert_same(results: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert not results.duplicated(KEY).any()
    pd.testing.assert_frame_equal(tidy(results), tidy(reference), check_exact=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("local")
    return root, tidy(Sweep(CONFIG, root).run(progress=False))


@pytest.fixture(scope="module")
def cluster():
    """A separate scheduler with 2 worker processes (each under a nanny), reached by address
    like a remote one."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        client.wait_for_workers(2)
        yield c, client


def test_dask_matches_local(reference, tmp_path):
    """make_executor("dask") with no scheduler: its own LocalCluster (one one-thread worker
    per core of this machine), trunks before branches by futures, the same rows as the local
    executor."""
    root, expected = reference
    executor = make_executor("dask")
    assert_same(Sweep(CONFIG, tmp_path, executor).run(progress=False), expected)
    records = {r["run"]: r for r in executor.records}
    assert set(records) == {t.spec.run for t in graph(CONFIG)}
    assert all(r["status"] == "done" and not r["resumed"] for r in records.values())
    # Several runs are ready together (the trunk and the FCN, then the branches): with two
    # workers or more, at least two of them trained (how many depends on the cores).
    assert len({r["pid"] for r in records.values()}) >= min(2, len(worker_plan("cpu")))
    assert ResultStore(tmp_path).finished_runs() == ResultStore(root).finished_runs()


def _kill_a_worker_mid_run(client, root: Path):
    """kill -9 the worker of a run that has a resume checkpoint past epoch 0; None if there is
    none right now."""
    store = ResultStore(root)
    for address, info in executing(client).items():
        for run in info["runs"]:
            try:
                state = store.load_checkpoint(run, "resume")
            except Exception:  # finished (and its resume.pt removed) while we read it
                continue
            if state is not None and 1 <= state["epoch"] < CONFIG.epochs:
                os.kill(info["pid"], signal.SIGKILL)
                return dict(run=run, pid=info["pid"], address=address, epoch=state["epoch"])
    return None


def test_killed_worker_resumes_from_checkpoint(reference, cluster, tmp_path):
    """kill -9 a worker mid-run: the scheduler re-runs its task on a live worker, which
    resumes from the run's checkpoint; the nanny respawns the worker; the sweep ends with
    exactly the rows of a clean run."""
    local, client = cluster
    _, expected = reference
    pids = set(client.run(os.getpid).values())
    executor = make_executor("dask", local.scheduler_address)  # as --scheduler tcp://HOST:PORT
    with ThreadPoolExecutor(1) as pool:
        sweep = pool.submit(Sweep(CONFIG, tmp_path, executor).run, False)
        killed = None
        while killed is None and not sweep.done():
            killed = _kill_a_worker_mid_run(client, tmp_path)
            time.sleep(0.02)
        results = sweep.result(timeout=300)
    print("killed", killed, "records", executor.records)
    assert killed is not None, "the sweep finished before a worker could be killed mid-run"
    assert killed["pid"] in pids
    assert_same(results, expected)
    record = next(r for r in executor.records if r["run"] == killed["run"])
    assert record["resumed"] and record["pid"] != killed["pid"], record
    assert not list((tmp_path / "runs").rglob("resume.pt"))
    # the nanny has respawned the killed worker
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = set(client.run(os.getpid).values())
        if len(now) == 2 and killed["pid"] not in now:
            break
        time.sleep(0.2)
    assert len(now) == 2 and killed["pid"] not in now, (pids, now)


def test_cli_resubmission_is_idempotent(reference, cluster, tmp_path):
    """The CLI path (--executor dask --scheduler ADDRESS) on a store merged from another
    machine's run folders: only the missing run is trained, a second sweep trains nothing,
    and no row is duplicated."""
    local, client = cluster
    root, expected = reference
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    missing = "vanilla-w4-n250-s0/efcn-t1"
    shutil.rmtree(tmp_path / "runs" / missing)
    argv = ["sweep", "--profile", "smoke", "--out", str(tmp_path), "--executor", "dask",
            "--scheduler", local.scheduler_address]
    argv += [arg for k, v in OVERRIDES.items() for arg in ("--set", f"{k}={v}")]
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("provenance.json")}
    for _ in range(2):
        assert cli.main(argv) == 0
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("provenance.json")}
    assert set(after) - set(before) == {tmp_path / "runs" / missing / "provenance.json"}
    assert all(after[p] == t for p, t in before.items())  # finished runs were not redone
    assert_same(ResultStore(tmp_path).results(), expected)


def test_worker_plan():
    """One worker per GPU, pinned; CPU workers × torch threads never exceed the cores."""
    plan = worker_plan("auto", gpus=["0", "1", "2", "3"], cores=16)
    assert [w["env"]["CUDA_VISIBLE_DEVICES"] for w in plan] == ["0", "1", "2", "3"]
    assert all(w["resources"] == {"GPU": 1} and w["env"]["NEEDLE_TORCH_THREADS"] == "4" for w in plan)
    assert [w["env"]["CUDA_VISIBLE_DEVICES"] for w in worker_plan("cuda", gpus=["2", "5"], cores=8)] == ["2", "5"]
    for cores, n in ((2, None), (2, 2), (16, 4), (16, 3), (3, 2)):
        plan = worker_plan("cpu", gpus=["0"], cores=cores, n_workers=n)
        threads = {int(w["env"]["NEEDLE_TORCH_THREADS"]) for w in plan}
        assert len(threads) == 1 and len(plan) * threads.pop() <= cores
        assert all("CUDA_VISIBLE_DEVICES" not in w["env"] for w in plan)
    assert len(worker_plan("cpu", cores=2)) == 2
    with pytest.raises(RuntimeError, match="no GPU"):
        worker_plan("cuda", gpus=[], cores=2)
    assert make_executor("local") is local_executor
    assert isinstance(make_executor("dask", "tcp://127.0.0.1:8786"), DaskExecutor)
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("slurm")
