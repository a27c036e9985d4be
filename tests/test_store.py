"""The result store under attack (GitHub issue 12): checkpoints that would run code, two
sweeps on one store, damaged files, bad configs, what killed processes leave, a full disk.

One small sweep (smoke profile: a trunk, its eFCN switched at 2, an FCN; 3 epochs on 250
images) is run once; each test damages its own copy.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from needle_core import io as nio
from needle_core.cli import main as cli_main
from needle_core.config import make_config
from needle_core import integrity
from needle_core.integrity import StoreDamaged, sidecar
from needle_core.lock import FileLock
from needle_core.store import ResultStore
from needle_core.sweep import RunsFailed, Sweep, plan

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(epochs=3, seeds=[0], n_trains=[250], n_test=100, switch_times=[2], kinds=["fc"], baselines=["fcn"],
             batch_size=50, threads=1)
GROUP = "vanilla-w4-n250-s0"
TRUNK, BRANCH, FCN = f"{GROUP}/cnn", f"{GROUP}/efcn-t2", f"{GROUP}/fcn"


def cli_args(overrides: dict) -> list[str]:
    return [arg for k, v in overrides.items() for arg in ("--set", f"{k}={json.dumps(v)}")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    Sweep(make_config("smoke", SMALL), root).run(progress=False)
    return root


@pytest.fixture
def store(finished, tmp_path) -> Path:
    """A copy of the finished store, to damage."""
    root = tmp_path / "store"
    shutil.copytree(finished, root)
    return root


def sweep_cli(root: Path, capsys, **extra) -> tuple[int, str]:
    """``python -m needle_core sweep`` of SMALL (with ``extra``) in this process: (exit code, stderr)."""
    try:
        code = cli_main(["sweep", "--profile", "smoke", "--out", str(root), *cli_args(dict(SMALL, **extra))])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def flip_byte(path: Path, offset: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * offset)] ^= 0x01
    path.write_bytes(bytes(data))


# --- checkpoints never run code ---------------------------------------------------------------
class Exploit:
    """Unpickling it calls os.system (what a checkpoint from anywhere may hold)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("run, name, listed", [(TRUNK, "switch-2", True), (TRUNK, "switch-2", False),
                                              (BRANCH, "resume", False)])
def test_a_planted_pickle_is_refused_and_never_runs(store, tmp_path, capsys, run, name, listed):
    """A planted checkpoint is refused before it is unpickled: by its checksum where the
    manifest lists the file, as unlisted where it does not (never loaded unchecked)."""
    marker = tmp_path / "pwned"
    shutil.rmtree(store / "runs" / BRANCH)  # the branch runs again: it loads the trunk's switch-2.pt
    path = store / "runs" / run / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Exploit(marker)}, path)
    if not listed:
        integrity.update(store, {integrity.relative(store, path): None})
    code, err = sweep_cli(store, capsys)
    assert code == 1
    assert not marker.exists()
    assert f"{path}: " in err and f"delete {store / 'runs' / run}/ to re-run it" in err
    assert ("sha256" if listed else "no checksum recorded") in err
    assert "Traceback" not in err
    assert not (store / "runs" / BRANCH / "provenance.json").exists()
    with pytest.raises(StoreDamaged):  # the Python API says the same
        ResultStore(store).load_checkpoint(run, name)
    assert not marker.exists()


def test_a_failed_run_stops_only_the_runs_that_need_it(tmp_path, capsys):
    (tmp_path / "runs" / TRUNK).mkdir(parents=True)
    (tmp_path / "runs" / TRUNK / "resume.pt").write_bytes(b"not a zip file" * 10)
    with pytest.raises(RunsFailed) as failed:
        Sweep(make_config("smoke", SMALL), tmp_path).run(progress=False)
    assert failed.value.statuses == {TRUNK: "failed", FCN: "done", BRANCH: "failed"}
    assert "resume.pt: no checksum recorded" in str(failed.value.errors[TRUNK])  # never unpickled
    assert f"needs {TRUNK}, which failed" in str(failed.value.errors[BRANCH])
    assert ResultStore(tmp_path).finished_runs() == [FCN]
    try:  # the CLI: a summary, then one line per failed run
        code = cli_main(["sweep", "--profile", "smoke", "--out", str(tmp_path), *cli_args(SMALL)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 1 and f"into {tmp_path}: 2 failed, 1 finished" in out
    assert f"2 of 3 runs failed" in err and f"  {TRUNK}: {tmp_path / 'runs' / TRUNK / 'resume.pt'}: " in err
    assert "Traceback" not in err


# --- integrity -------------------------------------------------------------------------------
@pytest.mark.parametrize("run, name", [(TRUNK, "metrics.parquet"), (BRANCH, "spec.json"), (FCN, "provenance.json"),
                                       (TRUNK, "switch-2.pt"), (BRANCH, "final.pt")])
def test_a_flipped_byte_is_one_line_naming_the_file(store, capsys, run, name):
    path = store / "runs" / run / name
    flip_byte(path, 0.5 if name != "provenance.json" else 0.0)  # byte 0 of the JSON: "{" no more
    with pytest.raises(StoreDamaged) as damage:
        if name.endswith(".pt"):
            ResultStore(store).load_checkpoint(run, name[:-3])
        else:
            ResultStore(store).results()
    message = str(damage.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert str(pickle.loads(pickle.dumps(damage.value))) == message  # as a Dask worker sends it back
    assert message.endswith(f"delete {store / 'runs' / run}/ to re-run it.")
    assert cli_main(["verify", "--out", str(store)]) == 1
    err = capsys.readouterr().err
    assert err == f"damaged: 1\n  {message}\n"


def test_a_swapped_spec_is_caught_even_when_its_checksum_matches(store):
    """A spec.json of another run listed with its own digest (an old store upgraded after the
    swap) is still refused (it gave a duplicated run and a missing one)."""
    trunk, fcn = (store / "runs" / TRUNK / "spec.json"), (store / "runs" / FCN / "spec.json")
    a, b = trunk.read_bytes(), fcn.read_bytes()
    trunk.write_bytes(b), fcn.write_bytes(a)
    integrity.update(store, {integrity.relative(store, p): [integrity.sha256_file(p)] for p in (trunk, fcn)})
    with pytest.raises(StoreDamaged, match=rf"{trunk}: describes run {FCN}, not {TRUNK}"):
        ResultStore(store).results()


def test_a_store_written_before_the_manifest_is_refused_until_upgraded(store, finished, capsys):
    """Old stores (no manifest; sidecars beside checkpoints) are refused by readers and
    sweeps with the command that upgrades them; upgrade checks what earlier records allow,
    says what it vouches for, and then the store reads as before."""
    (store / "manifest.json").unlink()
    for path in (store / "runs").rglob("*.pt"):
        sidecar(path).write_text(integrity.sha256_file(path) + "\n")
    with pytest.raises(StoreDamaged, match=r"manifest.json: missing: .*python -m needle_core upgrade --out"):
        ResultStore(store).results()
    code, err = sweep_cli(store, capsys)
    assert code == 1 and "upgrade --out" in err and err.count("\n") == 1
    assert cli_main(["verify", "--out", str(store)]) == 1
    assert "upgrade --out" in capsys.readouterr().err
    assert cli_main(["upgrade", "--out", str(store)]) == 0
    out = capsys.readouterr().out
    assert "checked: 10 files" in out and "vouched for: 4 files" in out and "removed: 4 old .sha256" in out
    pd.testing.assert_frame_equal(ResultStore(store).results(), ResultStore(finished).results())
    assert ResultStore(store).load_checkpoint(TRUNK, "switch-2") is not None
    assert cli_main(["verify", "--out", str(store)]) == 0
    assert not list(store.rglob("*.sha256"))


def test_verify_checks_config_digests(store, capsys):
    record = json.loads((store / "config.json").read_text())
    nio.atomic_write_json(store / "config.json", dict(record, digest="0123456789"))  # listed: not damage, a mismatch
    assert cli_main(["verify", "--out", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.count("is not the store's 0123456789 (config.json)") == 3


# --- two processes, one store -------------------------------------------------------------------
def test_a_second_sweep_of_another_config_is_refused_under_the_lock(tmp_path):
    """Sweeps made side by side pass their first check on the empty store; once one has run,
    the others find its config (under the lock, with runs to do) and train nothing."""
    first = Sweep(make_config("smoke", dict(SMALL, baselines=[])), tmp_path)
    others = [Sweep(make_config("smoke", dict(SMALL, baselines=baselines, lr=0.05)), tmp_path)
              for baselines in (["fcn"], [])]  # the FCN to train; nothing to train (same run ids)
    first.run(progress=False)
    runs = ResultStore(tmp_path).finished_runs()
    for other in others:
        with pytest.raises(ValueError, match=r"made with another config .*use another output folder"):
            other.run(progress=False)
    assert ResultStore(tmp_path).finished_runs() == runs
    assert set(ResultStore(tmp_path).provenance().config_digest) == {first.digest}


def test_two_processes_share_a_store_without_training_a_run_twice(tmp_path):
    """Sweep A (another process) trains; a sweep of another config is refused before it
    trains; sweep B of the same config (this process) joins A and trains only what A has not
    started.  Each run is trained once (the "done" counts of A and B add up to the runs), by
    A or B, and the store is whole."""
    overrides = dict(SMALL, switch_times=[0, 1], checkpoint_minutes=0)
    config, root, log = make_config("smoke", overrides), tmp_path / "store", tmp_path / "a.log"
    with open(log, "wb") as stream:
        a = subprocess.Popen([sys.executable, "-m", "needle_core", "sweep", "--profile", "smoke", "--out", str(root),
                              *cli_args(overrides)], cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (root / "runs" / TRUNK / "switch-0.pt").exists():  # A holds the store and trains its trunk
        assert a.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    with pytest.raises(ValueError, match=rf"made with another config .*a sweep writes it now: pid {a.pid} "):
        Sweep(make_config("smoke", dict(overrides, lr=0.05)), root)
    b = Sweep(config, root)
    b.run(progress=False)
    assert a.wait(300) == 0, log.read_text()
    done_a = int(re.search(r"into .*: (\d+) done", log.read_text()).group(1))
    done_b = list(b.statuses.values()).count("done")
    runs = {s.run for s in plan(config)}
    assert done_a + done_b == len(runs) == 4 and done_b >= 1, (log.read_text(), b.statuses)
    prov = ResultStore(root).provenance()
    assert set(prov.run) == runs and (prov.status == "done").all()
    assert {json.loads((root / "runs" / r / "provenance.json").read_text())["pid"] for r in runs} == {a.pid, os.getpid()}
    assert not ResultStore(root).results().duplicated(["run", "epoch", "metric", "layer"]).any()
    assert cli_main(["verify", "--out", str(root)]) == 0


# --- what killed processes leave ----------------------------------------------------------------
def _plant_leftovers(store: Path) -> list[Path]:
    planted = [store / "runs" / TRUNK / ".metrics.parquet.x1y2.tmp", store / ".config.json.abcd.tmp",
               store / "runs" / FCN / "resume.pt", sidecar(store / "runs" / FCN / "resume.pt")]
    for path in planted:
        path.write_bytes(b"\0" * 1000)
    return planted


def test_leftovers_of_killed_processes_are_removed_at_the_next_start(store, capsys):
    planted = _plant_leftovers(store)
    assert cli_main(["verify", "--out", str(store)]) == 0
    assert "4 leftovers of killed processes" in capsys.readouterr().out
    shutil.rmtree(store / "runs" / BRANCH)  # something to do
    with FileLock(store / ".lock") as other:  # another sweep writes the store: nothing is touched
        other.acquire(exclusive=False)
        Sweep(make_config("smoke", SMALL), store).run(progress=False)
        assert all(p.exists() for p in planted)
    shutil.rmtree(store / "runs" / BRANCH, ignore_errors=True)
    Sweep(make_config("smoke", SMALL), store).run(progress=False)
    assert not any(p.exists() for p in planted)
    assert ResultStore(store).leftovers() == []


# --- bad configs --------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (dict(lr="nan"), r"lr=nan: give a finite number"),
    (dict(lr="inf"), r"lr=inf: give a finite number"),
    (dict(lr_after=".nan"), r"lr_after=nan: give a finite number"),
    (dict(divergence_loss=-1), r"divergence_loss=-1.0: .*use a positive number"),
    (dict(momentum=-0.5), r"momentum=-0.5: use a value in \[0, 1\)"),
    (dict(weight_decay=-1e-4), r"weight_decay=-0.0001: use a value >= 0"),
    (dict(eval_batch_size=0), r"eval_batch_size=0: use a positive integer"),
    (dict(eval_points=0), r"eval_points=0: use a positive integer"),
    (dict(threads=-1), r"threads=-1: use a positive count, or 0"),
    (dict(checkpoint_minutes=-1), r"checkpoint_minutes=-1.0: use a value >= 0"),
    (dict(seeds=[10**14]), r"seed 100000000000000: use an integer in \[0, 2147483647\]"),
    (dict(seeds=[-1]), r"seed -1: use an integer in \[0, 2147483647\]"),
    (dict(seeds=[0, 0]), r"seeds=\[0, 0\] repeats a value"),
    (dict(seeds="[0, 1"), r"seeds='\[0, 1' is not valid YAML"),
    (dict(deviation="maybe"), r"deviation='maybe' is not of type bool"),
])
def test_bad_values_fail_before_anything_is_written(overrides, message, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        make_config("smoke", overrides)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["sweep", "--out", str(tmp_path / "store"), *[a for k, v in overrides.items()
                                                               for a in ("--set", f"{k}={v}")]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("text, message", [
    ("epochs: 3\nseeds: [0, 1\nlr: 0.1\n", r"is not valid YAML \(line 3, column 3: "),
    ("epochs: 3\ncolour: red\n", r"unknown config field 'colour' in .*bad.yaml"),
    ("- epochs\n", r"holds a YAML list: give a mapping of config fields"),
])
def test_a_bad_yaml_file_is_one_line_with_its_place(text, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["sweep", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and re.search(message, err) and err.count("\n") == 1, err


# --- the machine ----------------------------------------------------------------------------------
def test_a_full_disk_names_the_place_and_the_size(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nio.os, "fsync", full)
    with pytest.raises(nio.DiskFull) as error:
        nio.atomic_write_bytes(tmp_path / "run" / "final.pt", b"\0" * 3_000_000)
    assert error.value.errno == errno.ENOSPC and str(pickle.loads(pickle.dumps(error.value))) == str(error.value)
    assert re.fullmatch(rf"no space left on the device of {tmp_path / 'run'} to write final.pt \(about 3 MB needed, "
                        r"\d+ MB free\): .*", str(error.value))
    assert not list((tmp_path / "run").iterdir())  # no temporary file left


def test_provenance_records_the_machine(finished):
    prov = json.loads((finished / "runs" / TRUNK / "provenance.json").read_text())
    assert prov["cpu"] and prov["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert prov["blas"] and prov["threads"] == 1
    assert set(prov["checksums"]) == {"spec.json", "metrics.parquet"}
