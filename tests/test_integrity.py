"""Fault injection (GitHub issue 20): every kind of file a result store holds, flipped,
truncated, emptied and deleted, is named by ``verify`` (exit 1) and refused (or repaired) by
the readers; every bad input is one line naming the file or field and the fix, before
anything is written.

One small sweep (smoke profile: a trunk, its eFCN switched at 2, an FCN; 3 epochs on 250
images) with one landscape point is made once; each test damages its own copy.  A tiny
ImageFolder (3 classes of 32x32 images) serves the data-set inputs.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from needle_core import integrity, landscape
from needle_core import io as nio
from needle_core.cli import main as cli_main
from needle_core.config import make_config
from needle_core.integrity import StoreDamaged
from needle_core.store import ResultStore
from needle_core.sweep import Sweep

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(epochs=3, seeds=[0], n_trains=[250], n_test=100, switch_times=[2], kinds=["fc"], baselines=["fcn"],
             batch_size=50, threads=1)
GROUP = "vanilla-w4-n250-s0"
TRUNK, BRANCH, FCN = f"{GROUP}/cnn", f"{GROUP}/efcn-t2", f"{GROUP}/fcn"
POINT = f"landscape/{GROUP}-t2"

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def cli_args(overrides: dict) -> list[str]:
    return [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli_main(args)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished") / "store"
    config = make_config("smoke", SMALL)
    Sweep(config, root).run(progress=False)
    landscape.measure(config, root, [2], methods=("linear",), n_points=3, n_eval=100, progress=False)
    return root


@pytest.fixture
def store(finished, tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(finished, root)
    return root


def read_everything(root: Path) -> None:
    """What the book and a sweep read: results, provenance, config, checkpoints, landscape."""
    sweep = Sweep(make_config("smoke", SMALL), root)
    sweep.results()
    sweep.store.provenance()
    for run in (TRUNK, BRANCH, FCN):
        for name in ("switch-2", "final"):
            sweep.store.load_checkpoint(run, name)
    landscape.results(root)
    landscape.records(root)


# --- every kind of file, every fault ----------------------------------------------------------
FILES = ["config.json", "manifest.json", f"runs/{TRUNK}/spec.json", f"runs/{BRANCH}/metrics.parquet",
         f"runs/{FCN}/provenance.json", f"runs/{TRUNK}/switch-2.pt", f"runs/{BRANCH}/final.pt",
         f"{POINT}.json", f"{POINT}.parquet"]


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


FAULTS = {"flip": flip,
          "truncate": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
          "empty": lambda p: p.write_bytes(b""),
          "delete": lambda p: p.unlink()}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("name", FILES)
def test_every_fault_is_named_by_verify_and_refused_by_readers(store, capsys, name, fault):
    path = store / name
    FAULTS[fault](path)
    code, out, err = run_cli(["verify", "--out", str(store)], capsys)
    if fault == "delete" and name.endswith(".pt"):
        # Checkpoints are not committed (a clone has none): a gone one is named, not damage;
        # a switch checkpoint is recreated by re-training its trunk, a final.pt by re-running its run.
        assert code == 0 and f"gone: 1 recorded checkpoints" in out and name in out, out
        assert ResultStore(store).load_checkpoint(*name[len("runs/"):-len(".pt")].rsplit("/", 1)) is None
        return
    assert code == 1, (out, err)
    assert f"{path}: " in err and "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[0].startswith("damaged: ") and all(line.startswith("  ") for line in lines[1:])
    with pytest.raises(StoreDamaged) as damage:
        read_everything(store)
    message = str(damage.value)
    assert "\n" not in message and message.endswith(".")
    if name != "manifest.json":
        assert message.startswith(f"{path}: "), message
    # the CLI's sweep (nothing to train) refuses with the same one line, exit 1
    code, _, err = run_cli(["sweep", "--profile", "smoke", "--out", str(store), *cli_args(SMALL)], capsys)
    if code == 0:  # what a sweep with nothing to do never reads (checkpoints, the landscape), or repairs: a
        # run whose provenance was deleted is unfinished, so it is trained again (bit-identically)
        assert name.endswith(".pt") or name.startswith("landscape/") or \
            (name.endswith("provenance.json") and fault == "delete"), err
        if name.endswith("provenance.json"):
            assert run_cli(["verify", "--out", str(store)], capsys)[0] == 0
    else:
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_damaged_provenance_status_is_no_longer_silent(store, capsys):
    """ "done" -> "diverged" dropped a run from every read-out while verify called the store clean."""
    path = store / "runs" / FCN / "provenance.json"
    path.write_text(path.read_text().replace('"status": "done"', '"status": "diverged"'))
    assert run_cli(["verify", "--out", str(store)], capsys)[0] == 1
    with pytest.raises(StoreDamaged, match=r"provenance.json: sha256 .* delete .*/fcn/ to re-run it"):
        ResultStore(store).results()


def test_a_landscape_bit_flip_never_moves_a_barrier_silently(store):
    before = landscape.results(store)
    path = store / f"{POINT}.parquet"
    data = bytearray(path.read_bytes())
    for offset in range(0, len(data), max(1, len(data) // 40)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(StoreDamaged, match=str(path)):
            landscape.results(store)
    path.write_bytes(bytes(data))
    pd.testing.assert_frame_equal(landscape.results(store), before)


def test_a_deleted_run_folder_is_repaired_by_the_next_sweep(store, finished, capsys):
    """The fix that verify names for a damaged run's file works: delete the folder, sweep."""
    flip(store / "runs" / BRANCH / "metrics.parquet")
    code, _, err = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 1 and f"delete {store / 'runs' / BRANCH}/ to re-run it" in err
    shutil.rmtree(store / "runs" / BRANCH)
    code, out, _ = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 0 and "missing: 1 runs of the recorded config" in out and "deleted: " in out
    with pytest.warns(UserWarning, match=rf"lacks 1 of the config's runs .*{BRANCH}"):
        from needle_core.sweep import results

        results("smoke", store, overrides=SMALL, train=False)
    Sweep(make_config("smoke", SMALL), store).run(progress=False)
    assert run_cli(["verify", "--out", str(store)], capsys)[0] == 0
    pd.testing.assert_frame_equal(ResultStore(store).results(), ResultStore(finished).results())


def test_a_damaged_config_is_rebuilt_from_the_runs_provenance(store, finished, capsys):
    (store / "config.json").write_text("{")
    code, _, err = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 1 and f"rebuild-config --out {store}" in err
    code, _, err = run_cli(["sweep", "--profile", "smoke", "--out", str(store), *cli_args(SMALL)], capsys)
    assert code == 1 and f"{store / 'config.json'}: " in err and "rebuild-config" in err and err.count("\n") == 1
    assert run_cli(["rebuild-config", "--out", str(store)], capsys)[0] == 0
    assert json.loads((store / "config.json").read_text()) == json.loads((finished / "config.json").read_text())
    assert run_cli(["verify", "--out", str(store)], capsys)[0] == 0


def test_a_damaged_manifest_is_rebuilt_only_when_asked_and_says_so(store, capsys):
    flip(store / "manifest.json")
    code, _, err = run_cli(["upgrade", "--out", str(store)], capsys)
    assert code == 1 and "--rebuild" in err
    code, out, _ = run_cli(["upgrade", "--out", str(store), "--rebuild"], capsys)
    assert code == 0 and "vouched for: 10 files" in out and "checked: 6 files" in out, out
    assert run_cli(["verify", "--out", str(store)], capsys)[0] == 0


def test_an_empty_or_damaged_old_sidecar_is_named_not_a_crash(store, capsys):
    """Old stores kept checkpoint digests in sidecars: an empty one crashed verify and sweep."""
    (store / "manifest.json").unlink()
    checkpoint = store / "runs" / TRUNK / "switch-2.pt"
    integrity.sidecar(checkpoint).write_text("")
    code, _, err = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 1 and "upgrade --out" in err and f"{checkpoint}: sha256 " in err and "sidecar" in err
    assert "Traceback" not in err
    code, _, err = run_cli(["sweep", "--profile", "smoke", "--out", str(store), *cli_args(SMALL)], capsys)
    assert code == 1 and err.count("\n") == 1 and "upgrade --out" in err


def test_unexpected_files_are_named(store, capsys):
    (store / "runs" / TRUNK / "notes.txt").write_text("hello")
    code, _, err = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 1 and "notes.txt: not listed in the store's manifest" in err


def test_any_sweep_removes_leftovers_even_with_nothing_to_do(store, capsys):
    planted = [store / "runs" / TRUNK / ".metrics.parquet.x1y2.tmp", store / ".config.json.abcd.tmp",
               store / "runs" / FCN / "resume.pt"]
    for path in planted:
        path.write_bytes(b"\0" * 100)
    code, out, _ = run_cli(["verify", "--out", str(store)], capsys)
    assert code == 0 and "3 leftovers of killed processes (removed by the next sweep)" in out
    code, out, _ = run_cli(["sweep", "--profile", "smoke", "--out", str(store), *cli_args(SMALL)], capsys)
    assert code == 0 and "3 finished" in out
    assert not any(p.exists() for p in planted)
    assert run_cli(["verify", "--out", str(store)], capsys)[0] == 0


def test_a_hostile_data_cache_is_decoded_again_never_loaded(tmp_path, tiny_archive):
    from needle_core import data

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    root = tmp_path / "d"
    good = data.load(f"folder:{tiny_archive}", root)
    [cache] = (root / "cache").glob("*.pt")
    torch.save({"x_train": Exploit()}, cache)
    with pytest.warns(UserWarning, match=r"data cache .*: .*decoding the data set again"):
        again = data.load(f"folder:{tiny_archive}", root)
    assert not marker.exists() and torch.equal(again.x_train, good.x_train)
    flip(cache)  # a flipped bit in the cache is caught by its digest
    with pytest.warns(UserWarning, match="sha256 is not the one recorded"):
        assert torch.equal(data.load(f"folder:{tiny_archive}", root).x_train, good.x_train)


# --- bad inputs: one line, before anything is written ---------------------------------------------
def _images(tree: Path, size=(32, 32), sizes=None) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for k, name in enumerate(("ant", "bee", "cat")):
            (tree / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(2):
                s = sizes[(k + i) % len(sizes)] if sizes else size
                Image.new("RGB", s, (80 * k, 40 * i, 9)).save(tree / split / name / f"{i}.png")


def _tar(tree: Path, archive: Path, members=("train", "test")) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for member in members:
            tar.add(tree / member, arcname=member)
    return archive


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tiny")
    _images(base / "tree")
    return _tar(base / "tree", base / "tiny.tar.gz")


def _bad_archive(kind: str, tmp: Path, good: Path) -> Path:
    out = tmp / "bad.tar.gz"
    if kind == "corrupt":
        out.write_bytes(os.urandom(2000))
    elif kind == "truncated":
        out.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        out.write_bytes(b"")
    elif kind == "dotdot":
        with tarfile.open(out, "w:gz") as tar:
            info = tarfile.TarInfo("../evil.txt")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    elif kind == "no-train":
        _images(tmp / "tree")
        _tar(tmp / "tree", out, members=("test",))
    elif kind == "zip":
        out = tmp / "bad.zip"
        shutil.make_archive(str(tmp / "bad"), "zip", good.parent / "tree")
    elif kind == "16x16":
        _images(tmp / "tree", size=(16, 16))
        _tar(tmp / "tree", out)
    elif kind == "mixed-sizes":
        _images(tmp / "tree", sizes=[(32, 32), (30, 32)])
        _tar(tmp / "tree", out)
    return out


FOLDER = dict(n_trains=[6], n_test=None, batch_size=3, seeds=[0], epochs=2, switch_times=[0], kinds=["fc"],
              baselines=[], threads=1)


@pytest.mark.parametrize("kind, message", [
    ("corrupt", r"cannot be extracted .*: it is damaged, truncated or not a \.tar\.gz"),
    ("truncated", r"cannot be extracted .*: it is damaged, truncated or not a \.tar\.gz"),
    ("empty", r"cannot be extracted .*: it is damaged, truncated or not a \.tar\.gz"),
    ("dotdot", r"cannot be extracted \(.*evil.txt.*\)"),
    ("no-train", r"has no train/ subfolder"),
    ("zip", r"is neither a folder nor a \.tar\.gz archive"),
    ("16x16", r"images are 3x16x16 .*architecture 'vanilla' cannot take them.*give 32x32 images"),
    ("mixed-sizes", r"is 30x32 pixels, .*all images must be the same size"),
])
def test_a_bad_data_set_is_one_line_before_anything_is_written(kind, message, tmp_path, tiny_archive, capsys):
    archive = _bad_archive(kind, tmp_path, tiny_archive)
    out = tmp_path / "store"
    overrides = dict(FOLDER, dataset=f"folder:{archive}", data_root=str(tmp_path / "d"))
    code, _, err = run_cli(["sweep", "--profile", "smoke", "--out", str(out), *cli_args(overrides)], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    import re

    assert re.search(message, err), err
    assert not out.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil.txt").exists()
    # the same command with a good archive is not blocked by the failed start
    good = dict(overrides, dataset=f"folder:{tiny_archive}")
    code, stdout, err = run_cli(["sweep", "--profile", "smoke", "--out", str(out), *cli_args(good)], capsys)
    assert code == 0, err


@pytest.mark.parametrize("args, message", [
    (["--set", "n_trains=[30]"], r"n_trains: 30 images of folder:.* is not a class-balanced subset .* at most 6"),
    (["--set", "n_test=9"], r"n_test: 9 images .* use a multiple of 3 of at most 6"),
    (["--set", "dataset=folder:"], r"dataset 'folder:' names no path"),
    (["--set", "archs=[]"], r"archs=\[\] gives no run"),
    (["--executor", "foo"], r"--executor: invalid choice: 'foo'"),
    (["--config", "{tmp}"], r"--config .* is a folder: give a YAML file"),
    (["--set", "dataset=folder:{tmp}/nothing.tar.gz"], r"does not exist"),
])
def test_a_bad_input_is_one_line_before_anything_is_written(args, message, tmp_path, tiny_archive, capsys):
    import re

    out = tmp_path / "store"
    base = dict(FOLDER, dataset=f"folder:{tiny_archive}", data_root=str(tmp_path / "d"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli(["sweep", "--profile", "smoke", "--out", str(out), *cli_args(base), *args], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_device_cuda_without_a_gpu_is_refused_before_writing(tmp_path, capsys):
    code, _, err = run_cli(["sweep", "--out", str(tmp_path / "s"), "--set", "device=cuda"], capsys)
    assert code == 2 and "device='cuda' but no CUDA GPU is visible" in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_an_output_folder_that_is_a_file_or_cannot_be_written(tmp_path, capsys, monkeypatch):
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run_cli(["sweep", "--out", str(target)], capsys)
    assert code == 2 and "is a file, not a folder" in err and err.count("\n") == 1
    assert target.read_text() == "x"

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # a read-only folder (root ignores chmod)
    code, _, err = run_cli(["sweep", "--out", str(tmp_path / "ro"), *cli_args(SMALL)], capsys)
    assert code == 2 and "cannot be written" in err and "Permission denied" in err and err.count("\n") == 1
    assert not (tmp_path / "ro").exists()


@pytest.mark.parametrize("times, message", [("abc", r"--switch-times 'abc': give comma-separated whole numbers"),
                                            ("3", r"\[3\] not in the sweep's grid")])
def test_landscape_switch_times_are_checked_first(store, capsys, times, message):
    import re

    before = sorted(p.name for p in (store / "landscape").iterdir())
    code, _, err = run_cli(["landscape", "--profile", "smoke", "--out", str(store), *cli_args(SMALL),
                            "--switch-times", times], capsys)
    assert code == 2 and re.search(message, err) and err.count("\n") == 1, err
    assert sorted(p.name for p in (store / "landscape").iterdir()) == before


def test_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Sweep, "run", interrupted)
    code, _, err = run_cli(["sweep", "--out", str(tmp_path / "s"), *cli_args(SMALL)], capsys)
    assert code == 130 and "interrupted: " in err and "run the same 'python -m needle_core sweep ...' command again" \
        in err and err.count("\n") == 1


def test_reproduce_refuses_to_run_outside_the_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Sweep, "run", lambda *a, **k: pytest.fail("reproduce trained"))
    code, _, err = run_cli(["reproduce", "--profile", "cpu"], capsys)
    assert code == 2 and "reproduce runs in the repository's root" in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_reproduce_never_trains_unless_asked(tmp_path, monkeypatch, capsys):
    from needle_core import book

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(Sweep, "run", lambda *a, **k: pytest.fail("reproduce trained"))
    calls = []
    monkeypatch.setattr(book, "execute_all", lambda *a, **k: calls.append(k))
    code, _, err = run_cli(["reproduce", "--profile", "smoke", "--out", str(tmp_path / "empty"), *cli_args(SMALL)],
                           capsys)
    assert code == 0 and calls[0]["train"] is False and "3 runs of the config are missing" in err
    assert not (tmp_path / "empty").exists()


# --- killed at any write: resumes to the same store --------------------------------------------------
class Killed(BaseException):
    """A kill -9 at one write (raised where the file would be renamed into place)."""


CRASH = dict(SMALL, kinds=[], checkpoint_minutes=0)  # a trunk and an FCN, a resume point every epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted") / "store"
    Sweep(make_config("smoke", CRASH), root).run(progress=False)
    return root


@pytest.mark.parametrize("k", [1, 3, 5, 8, 12, 17, 23, 30])
def test_killed_at_any_write_the_store_verifies_and_resumes_bit_identically(k, uninterrupted, tmp_path, monkeypatch):
    """The k-th file replaced while the sweep writes (the manifest's steps included) is where
    it dies: the store verifies without damage, and the next sweep ends where an
    uninterrupted one does (results and weights bit for bit)."""
    root = tmp_path / "store"
    real, calls = nio.write_bytes_unlisted, []

    def dying(path, data):
        calls.append(path)
        if len(calls) == k:
            raise Killed
        return real(path, data)

    monkeypatch.setattr(nio, "write_bytes_unlisted", dying)
    try:
        Sweep(make_config("smoke", CRASH), root).run(progress=False)
    except Killed:
        pass
    monkeypatch.setattr(nio, "write_bytes_unlisted", real)
    if len(calls) < k:
        pytest.skip(f"the sweep replaces only {len(calls)} files")
    report = ResultStore(root).verify()
    assert report["problems"] == [], (calls[-1], report["problems"])
    Sweep(make_config("smoke", CRASH), root).run(progress=False)
    assert ResultStore(root).verify()["problems"] == []
    key = ["run", "epoch", "metric", "layer"]
    pd.testing.assert_frame_equal(ResultStore(root).results().sort_values(key).reset_index(drop=True),
                                  ResultStore(uninterrupted).results().sort_values(key).reset_index(drop=True),
                                  check_exact=True)
    for path in uninterrupted.rglob("final.pt"):
        a = torch.load(path, weights_only=True)["model"]
        b = torch.load(root / path.relative_to(uninterrupted), weights_only=True)["model"]
        assert all(torch.equal(a[n], b[n]) for n in a)
