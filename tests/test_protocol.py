"""The training protocol (GitHub issue "protocol tests"): determinism, the switch (exact at
t_w, optimiser state carried), resume after kill -9, divergence, config validation, the
controlled CNN, the smoke profile end to end, and the store's refusals.

CPU only and small.  One smoke sweep (the real profile) and one small sweep (3 epochs, one
seed, one switch time, with ``lr_after`` so that the controlled CNN is in it) are shared
across tests through module-scoped fixtures; everything else is a few epochs on 250 images.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import needle_core as nc
from needle_core.cli import main as cli_main
from needle_core.config import SweepConfig, make_config
from needle_core.integrity import sha256_file
from needle_core.run import RunSpec, execute
from needle_core.store import ResultStore
from needle_core.sweep import Sweep, plan, results
from needle_core.switch import switch
from needle_core.train import make_optimizer, train_epoch

REPO = Path(__file__).resolve().parents[1]
SHAPE = (3, 32, 32)
SCORES = ["train_loss", "train_acc", "test_loss", "test_acc"]
KEY = ["run", "epoch", "metric", "layer"]

#: The small sweep: trunk (3 epochs), eFCN switched at 1, and the controlled CNN (lr 0.1 -> 0.05).
SMALL = dict(epochs=3, seeds=[0], n_trains=[250], n_test=100, switch_times=[1], kinds=["fc"], baselines=[],
             batch_size=50, lr_after=0.05, threads=1)


def small_config(root, **extra) -> SweepConfig:
    return make_config("smoke", dict(SMALL, data_root=str(root), **extra))


def cli_args(config: dict) -> list[str]:
    """``--set KEY=VALUE`` for every field of ``config``, in YAML syntax."""
    out = []
    for key, value in config.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def sorted_results(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def final_weights(root: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(root / "runs")): torch.load(p, weights_only=False)["model"]
            for p in sorted((root / "runs").rglob("final.pt"))}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for run in a:
        assert a[run].keys() == b[run].keys(), run
        for name in a[run]:
            assert torch.equal(a[run][name], b[run][name]), f"{run}: {name} differs"


def scores(frame: pd.DataFrame, run: str, epoch: int) -> pd.Series:
    rows = frame[(frame.run == run) & (frame.epoch == epoch) & frame.metric.isin(SCORES)]
    return rows.set_index("metric")["value"].reindex(SCORES)


def file_states(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke profile end to end, timed: ``(root, results, (wall s, CPU s), load averages)``.
    On one thread, the CPU time is what the wall time would be on an idle machine."""
    root = tmp_path_factory.mktemp("smoke")
    load_before = os.getloadavg()
    start, cpu = time.perf_counter(), time.process_time()
    frame = results("smoke", root=root, overrides={"data_root": str(root)})
    times = time.perf_counter() - start, time.process_time() - cpu
    return root, frame, times, (load_before, os.getloadavg())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small sweep, run once: ``(root, config, results)``."""
    root = tmp_path_factory.mktemp("small")
    config = small_config(root)
    return root, config, Sweep(config, root).run(progress=False)


# --- 1. determinism -----------------------------------------------------------------------
def test_same_config_and_seed_give_bit_identical_results(small, tmp_path):
    root_a, _, frame_a = small
    frame_b = Sweep(small_config(tmp_path), tmp_path).run(progress=False)
    assert len(frame_a) > 0
    pd.testing.assert_frame_equal(sorted_results(frame_a), sorted_results(frame_b), check_exact=True)
    assert_same_weights(final_weights(root_a), final_weights(tmp_path))


# --- 2. the switch is exact ---------------------------------------------------------------
def test_branches_start_at_their_trunk_exactly(smoke):
    root, frame, _, _ = smoke
    config = make_config("smoke", {"data_root": str(root)})
    branches = [s for s in plan(config) if s.role in ("efcn", "elcn")]
    assert {s.switch_time for s in branches} == {0, 2, 4} and {s.role for s in branches} == {"efcn", "elcn"}
    for spec in branches:
        t = spec.switch_time
        rows = frame[frame.run == spec.run]
        # Epochs count from the CNN's start: evaluations from t_w to the budget, losses after t_w.
        assert sorted(rows[rows.metric == "test_acc"].epoch) == [e for e in config.eval_epochs if e >= t]
        assert sorted(rows[rows.metric == "epoch_loss"].epoch) == list(range(t + 1, config.epochs + 1))
        # At the switch the embedded net computes the CNN's function: same losses and accuracies.
        np.testing.assert_allclose(scores(frame, spec.run, t), scores(frame, spec.trunk, t), rtol=1e-6, atol=0,
                                   err_msg=spec.run)
        # ... and sits in the CNN subspace.
        delta = rows[(rows.epoch == t) & rows.metric.isin(["delta", "delta_loc", "delta_ws"])]
        assert set(delta.layer) == {"conv1", "conv2", "conv3", "network"}
        assert (delta.value == 0).all(), delta
        # It then leaves it (the weights are free in FC space) and trains on.
        later = rows[(rows.epoch == config.epochs) & (rows.metric == "delta") & (rows.layer == "network")]
        assert float(later.value.iloc[0]) > 1e-4
        assert not np.allclose(scores(frame, spec.run, config.epochs), scores(frame, spec.trunk, config.epochs))


# --- 3. the optimiser state goes through the switch --------------------------------------
def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("kind", ["fc", "lc"])
def test_switch_carries_the_momentum_buffers(kind):
    torch.manual_seed(0)
    model = nc.vanilla_cnn(ch=4)
    x, y = torch.randn(20, *SHAPE), torch.randint(0, 10, (20,))
    lr, lr_after, momentum = 0.1, 0.05, 0.9
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(3):
        optimizer.zero_grad()
        _loss(model, x, y).backward()
        optimizer.step()

    new, new_optimizer = switch(model, optimizer, SHAPE, kind, lr=lr_after)
    assert type(new_optimizer) is torch.optim.SGD and len(new_optimizer.param_groups) == 1
    old_group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    new_group = {k: v for k, v in new_optimizer.param_groups[0].items() if k != "params"}
    assert new_group == dict(old_group, lr=lr_after)
    assert optimizer.param_groups[0]["lr"] == lr  # the CNN's optimiser is left as it was

    layers = dict(nc.embedded_layers(new))
    assert set(layers) == {"conv1", "conv2", "conv3"}
    new_params = dict(new.named_parameters())
    for name, param in model.named_parameters():
        buf = optimizer.state[param]["momentum_buffer"]
        new_buf = new_optimizer.state[new_params[name]]["momentum_buffer"]
        path, _, which = name.rpartition(".")
        if path in layers:  # conv weight or bias: the buffer is embedded like the parameter
            layer = layers[path]
            embed_state = layer.embed_kernel if which == "weight" else layer.embed_bias
            expected = embed_state(layer.geometry, buf)
            assert new_buf.shape == new_params[name].shape != buf.shape
        else:  # the final Linear layer: copied
            expected = buf
        assert torch.equal(new_buf, expected), name
        assert new_buf.data_ptr() != buf.data_ptr(), f"{name}: buffer shared with the CNN's optimiser"

    # The first eFCN step uses the carried state: W -= lr_after * (momentum * buf + grad),
    # not W -= lr_after * grad as it would with a reset optimiser.
    before = {n: p.detach().clone() for n, p in new.named_parameters()}
    bufs = {n: new_optimizer.state[p]["momentum_buffer"].clone() for n, p in new.named_parameters()}
    new_optimizer.zero_grad()
    _loss(new, x, y).backward()
    grads = {n: p.grad.clone() for n, p in new.named_parameters()}
    new_optimizer.step()
    for name, param in new.named_parameters():
        # SGD's own arithmetic (buf = momentum * buf + grad; W += -lr * buf): bit for bit.
        carried = bufs[name].mul(momentum).add(grads[name])
        assert torch.equal(new_optimizer.state[param]["momentum_buffer"], carried), name
        assert torch.equal(param.detach(), before[name].add(carried, alpha=-lr_after)), name
        if name in ("conv1.weight", "conv2.weight"):  # far from what a reset state would do
            update, reset = before[name] - param.detach(), lr_after * grads[name]
            assert (update - reset).norm() > 0.1 * update.norm()


def test_switch_keeps_every_other_hyperparameter():
    torch.manual_seed(0)
    model = nc.vanilla_cnn(ch=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5, dampening=0.0, weight_decay=1e-3,
                                nesterov=True, maximize=False)
    torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)  # adds initial_lr to the group
    group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    assert group["initial_lr"] == 0.2
    _, kept = switch(model, optimizer, SHAPE, "fc")  # lr=None keeps the learning rate too
    assert {k: v for k, v in kept.param_groups[0].items() if k != "params"} == group
    assert not kept.state  # no step taken: nothing to carry
    _, changed = switch(model, optimizer, SHAPE, "lc", lr=0.01)
    assert {k: v for k, v in changed.param_groups[0].items() if k != "params"} == dict(group, lr=0.01)


# --- 4. resume after kill -9 ---------------------------------------------------------------
def _start_sweep(out: Path, config: dict, log: Path) -> subprocess.Popen:
    """``python -m needle_core sweep`` in the background; its output (the progress bar) goes
    to ``log``, not to a pipe that nobody reads while it runs."""
    cmd = [sys.executable, "-m", "needle_core", "sweep", "--profile", "smoke", "--out", str(out), *cli_args(config)]
    with open(log, "wb") as stream:
        return subprocess.Popen(cmd, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, ready, log: Path, timeout: float = 300.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every few ms)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc={proc.returncode}) before it could be killed mid-run:\n"
                        f"{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("the sweep never reached the point where the test kills it")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _assert_store_readable(root: Path) -> None:
    """Every file a reader opens is complete: only hidden ``.*.tmp`` files can be partial,
    and nothing reads them; every checkpoint is one its sidecar lists (locks are empty or
    hold who took them)."""
    for path in (root / "runs").rglob("*"):
        if not path.is_file() or path.name == ".lock":
            continue
        if path.name.endswith(".tmp"):
            assert path.name.startswith("."), path
            continue
        if path.name.endswith(".pt.sha256"):
            checkpoint = path.with_name(path.name[:-len(".sha256")])
            assert not checkpoint.exists() or sha256_file(checkpoint) in path.read_text().split(), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            torch.load(path, weights_only=False)
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        else:
            raise AssertionError(f"unexpected file {path}")
    assert not any(".tmp" in run for run in ResultStore(root).finished_runs())


def test_resume_after_kill_is_bit_identical(small, tmp_path):
    root_a, _, frame_a = small
    out = tmp_path / "store"
    config = dict(SMALL, data_root=str(tmp_path), checkpoint_minutes=0)  # a resume point every epoch
    runs = out / "runs" / "vanilla-w4-n250-s0"

    # Kill 1: inside the CNN trunk, once it has trained an epoch (it saved its switch checkpoint).
    log = tmp_path / "sweep.log"
    _kill_when(_start_sweep(out, config, log), lambda: (runs / "cnn" / "switch-1.pt").exists(), log)
    _assert_store_readable(out)
    assert (runs / "cnn" / "resume.pt").exists() and not (runs / "cnn" / "provenance.json").exists()

    # Kill 2: inside a branch, after the trunk finished, once the branch has trained an epoch
    # (its resume state was replaced): it resumes as an eFCN (or controlled CNN) with lr_after
    # restored from its optimiser state.
    first_seen: dict[str, int] = {}

    def branch_trained():
        for path in (runs / "efcn-t1" / "resume.pt", runs / "cnn_control-t1" / "resume.pt"):
            try:
                inode = path.stat().st_ino  # an atomic rewrite is a new file
            except FileNotFoundError:
                continue
            if first_seen.setdefault(str(path), inode) != inode:
                return True
        return False

    _kill_when(_start_sweep(out, config, log), branch_trained, log)
    _assert_store_readable(out)
    assert (runs / "cnn" / "provenance.json").exists() and not (runs / "cnn" / "resume.pt").exists()
    resumable = [p.parent.name for p in runs.glob("*/resume.pt") if not (p.parent / "provenance.json").exists()]
    assert resumable, "the kill left nothing to resume"

    # Finish (here, same thread count) and compare with the clean run of the same settings.
    frame = Sweep(make_config("smoke", config), out).run(progress=False)
    _assert_store_readable(out)
    assert not list(out.rglob("resume.pt"))
    assert (ResultStore(out).provenance().status == "done").all()
    pd.testing.assert_frame_equal(sorted_results(frame), sorted_results(frame_a), check_exact=True)
    assert_same_weights(final_weights(out), final_weights(root_a))


def test_interrupted_run_resumes_in_process_and_refuses_another_config(small, tmp_path):
    _, _, frame_a = small
    config = small_config(tmp_path, checkpoint_minutes=0)
    spec = RunSpec("cnn", "vanilla", 4, 250, 0)

    def crash(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(spec, config, tmp_path, on_epoch=crash)
    assert ResultStore(tmp_path).load_checkpoint(spec.run, "resume") is not None
    with pytest.raises(ValueError, match="--out"):  # a resume state of another config is not continued
        execute(spec, small_config(tmp_path, epochs=4, checkpoint_minutes=0), tmp_path)
    assert execute(spec, config, tmp_path) == "done"
    trunk = ResultStore(tmp_path).results()[KEY + ["value"]]
    expected = frame_a.loc[frame_a.run == spec.run, KEY + ["value"]]
    pd.testing.assert_frame_equal(sorted_results(trunk), sorted_results(expected), check_exact=True)


# --- 5. divergence -----------------------------------------------------------------------
def _assert_stopped_cleanly(root: Path, frame: pd.DataFrame, prov: pd.DataFrame, config: SweepConfig) -> None:
    for rec in prov[prov.status == "diverged"].to_dict("records"):
        assert 1 <= rec["diverged_epoch"] < config.epochs, rec
        d = root / "runs" / rec["run"]
        assert not (d / "resume.pt").exists() and not (d / "final.pt").exists()
        losses = frame[(frame.run == rec["run"]) & (frame.metric == "epoch_loss")]
        assert losses.epoch.max() == rec["diverged_epoch"]  # stopped at the first bad epoch
        last = float(losses[losses.epoch == rec["diverged_epoch"]].value.iloc[0])
        assert not np.isfinite(last) or last > config.divergence_loss


def test_huge_learning_rate_diverges_cleanly_and_the_sweep_finishes(tmp_path):
    config = small_config(tmp_path, lr=1e4, lr_after=None, switch_times=[0, 2], baselines=["fcn"])
    frame = Sweep(config, tmp_path).run(progress=False)
    prov = ResultStore(tmp_path).provenance().set_index("run")
    assert sorted(prov.index) == sorted(s.run for s in plan(config))  # every run recorded
    group = "vanilla-w4-n250-s0"
    assert prov.loc[f"{group}/cnn", "status"] == "diverged"
    assert prov.loc[f"{group}/fcn", "status"] == "diverged"
    assert prov.loc[f"{group}/efcn-t0", "status"] == "diverged"
    # A branch whose trunk diverged before its switch time is recorded, not dropped.
    assert prov.loc[f"{group}/cnn", "diverged_epoch"] <= 2
    assert prov.loc[f"{group}/efcn-t2", "status"] == "trunk_diverged"
    assert prov.loc[f"{group}/efcn-t2", "diverged_epoch"] == prov.loc[f"{group}/cnn", "diverged_epoch"]
    _assert_stopped_cleanly(tmp_path, frame, prov.reset_index(), config)
    # Finished means finished: a second sweep retrains nothing.
    states = file_states(tmp_path)
    Sweep(config, tmp_path).run(progress=False)
    assert file_states(tmp_path) == states


def test_huge_learning_rate_after_the_switch_diverges_the_branches_only(tmp_path):
    config = small_config(tmp_path, lr_after=1e4)
    frame = Sweep(config, tmp_path).run(progress=False)
    prov = ResultStore(tmp_path).provenance().set_index("run")
    group = "vanilla-w4-n250-s0"
    assert prov.loc[f"{group}/cnn", "status"] == "done"
    assert prov.loc[f"{group}/efcn-t1", "status"] == "diverged"
    assert prov.loc[f"{group}/cnn_control-t1", "status"] == "diverged"
    _assert_stopped_cleanly(tmp_path, frame, prov.reset_index(), config)


# --- 6. config validation ------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (dict(switch_times=[50], epochs=10), r"switch time 50 is outside \[0, epochs=10\).*lower it or raise epochs"),
    (dict(switch_times=[6]), r"switch time 6 is outside \[0, epochs=6\)"),
    (dict(archs=["resnet"]), r"unknown architecture 'resnet': choose from \['alexnet', 'vanilla'\]"),
    (dict(widths=[0]), r"width 0: use a positive integer"),
    (dict(widths=["wide"]), r"widths=\['wide'\] is not of type list\[int\]"),
    (dict(colour="red"), r"unknown config field 'colour'; valid fields: .*epochs"),
    (dict(dataset="cifar11"), r"dataset 'cifar11': use cifar10, cifar100, synthetic or folder:"),
    (dict(epochs="ten"), r"epochs='ten' is not of type int.*epochs=100"),
    (dict(n_trains=[255]), r"n_train=255: subsets are class-balanced, use a multiple of 10"),
    (dict(kinds=["conv"]), r"kind 'conv': use 'fc'"),
    (dict(lr=-1), r"learning rates must be positive"),
])
def test_bad_configs_fail_before_training_with_the_fix(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        make_config("smoke", dict(overrides, data_root=str(tmp_path)))
    assert not list(tmp_path.iterdir())


def test_a_hand_built_config_is_validated_by_the_sweep(tmp_path):
    with pytest.raises(ValueError, match=r"switch time 4 is outside \[0, epochs=3\)"):
        Sweep(SweepConfig(dataset="synthetic", epochs=3, switch_times=[4]), tmp_path)
    assert not list(tmp_path.iterdir())


def test_command_line_values_are_typed():
    config = make_config("smoke", {"lr": "1e-2", "lr_after": "1", "seeds": "3", "n_trains": "[null, 500]"})
    assert config.lr == 0.01 and config.lr_after == 1.0 and config.seeds == [3] and config.n_trains == [None, 500]
    assert make_config("smoke", {"dataset": "folder:/data/x.tar.gz"}).dataset == "folder:/data/x.tar.gz"


def test_cli_refuses_a_bad_config_with_exit_2(tmp_path, capsys):
    out = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "needle_core", "sweep", "--set", "switch_times=[50]", "--set",
                           "epochs=10", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "switch time 50 is outside [0, epochs=10)" in proc.stderr and "raise epochs" in proc.stderr
    assert not out.exists()
    # The same parser, in process, for the other mistakes.
    for args, message in [(["--set", "archs=[resnet]"], "unknown architecture 'resnet'"),
                          (["--set", "colour=red"], "unknown config field 'colour'"),
                          (["--set", "epochs"], "is not KEY=VALUE"),
                          (["--set", "epochs=abc"], "epochs='abc' is not of type int")]:
        with pytest.raises(SystemExit) as exit_:
            cli_main(["sweep", "--out", str(out), *args])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


# --- 7. the controlled CNN -------------------------------------------------------------------
def test_plan_has_one_control_per_switch_time_only_when_lr_changes():
    base = dict(seeds=[0], switch_times=[0, 2, 4])
    with_control = plan(make_config("smoke", dict(base, lr_after=0.05)))
    controls = [s for s in with_control if s.role == "cnn_control"]
    assert sorted(s.switch_time for s in controls) == [0, 2, 4]
    assert all(s.lr_after == 0.05 and s.trunk == "vanilla-w4-n500-s0/cnn" for s in controls)
    runs = [s.run for s in with_control]
    assert runs.index("vanilla-w4-n500-s0/cnn") < min(runs.index(s.run) for s in controls)
    for lr_after in (None, 0.1):  # nothing changes at the switch: no control
        assert not [s for s in plan(make_config("smoke", dict(base, lr_after=lr_after))) if s.role == "cnn_control"]


def test_control_starts_from_the_branch_checkpoint_with_the_same_lr_change(small):
    root, config, frame = small
    group = "vanilla-w4-n250-s0"
    trunk, control, branch = f"{group}/cnn", f"{group}/cnn_control-t1", f"{group}/efcn-t1"
    assert {trunk, control, branch} == set(frame.run)
    # Same start as the trunk and the branch at t_w = 1 ...
    pd.testing.assert_series_equal(scores(frame, control, 1), scores(frame, trunk, 1), check_exact=True)
    np.testing.assert_allclose(scores(frame, branch, 1), scores(frame, trunk, 1), rtol=1e-6)
    # ... then its own trajectory: the learning rate changed for it as for the branch.
    loss = frame[frame.metric == "epoch_loss"].pivot(index="epoch", columns="run", values="value")
    assert (loss.loc[2:, control] != loss.loc[2:, trunk]).all()
    assert not np.allclose(scores(frame, control, 3), scores(frame, trunk, 3))
    prov = ResultStore(root).provenance().set_index("run")
    assert prov.loc[control, "lr_after"] == prov.loc[branch, "lr_after"] == 0.05
    # Replayed by hand from the trunk's checkpoint at t_w with lr 0.05, both end bit for bit
    # where the sweep's runs ended: the same start, the same learning-rate change.
    from needle_core.data import load

    data = load("synthetic", root, n_train=250, n_test=100, seed=0)
    store = ResultStore(root)
    for run, kind in ((control, None), (branch, "fc")):
        state = store.load_checkpoint(trunk, "switch-1")
        model = nc.vanilla_cnn(ch=4)
        model.load_state_dict(state["model"])
        optimizer = make_optimizer(model.parameters(), config.lr)
        optimizer.load_state_dict(state["optimizer"])
        if kind is None:
            optimizer.param_groups[0]["lr"] = 0.05
        else:
            model, optimizer = switch(model, optimizer, SHAPE, kind, lr=0.05)
        for epoch in (1, 2):
            train_epoch(model, optimizer, data.x_train, data.y_train, config.batch_size, 0, epoch)
        final = store.load_checkpoint(run, "final")["model"]
        assert_same_weights({run: model.state_dict()}, {run: final})


# --- 8. the smoke profile end to end ----------------------------------------------------------
def test_smoke_profile_end_to_end(smoke):
    root, frame, (wall, cpu), (load_before, load_after) = smoke
    config = make_config("smoke", {"data_root": str(root)})
    prov = ResultStore(root).provenance()
    assert sorted(prov.run) == sorted(s.run for s in plan(config))
    assert (prov.status == "done").all()
    assert set(prov.role) == {"cnn", "efcn", "elcn", "fcn"} == set(frame.role)
    assert set(frame.metric) == {*SCORES, "epoch_loss", "delta", "delta_loc", "delta_ws"}
    cores = os.cpu_count() or 1
    print(f"\nsmoke profile: {wall:.1f} s wall, {cpu:.1f} s CPU (1 thread), {len(prov)} runs; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after, on {cores} cores")
    # Under a minute on an idle machine: the CPU time of one thread is that wall time, and a
    # loaded machine gets proportionally more wall time.
    assert cpu < 60
    assert wall < 60 * max(1.0, load_after[0] / cores, load_before[0] / cores)


def test_a_finished_sweep_is_read_not_rerun(smoke):
    root, frame, (wall, _), _ = smoke
    states = file_states(root)
    start = time.perf_counter()
    again = results("smoke", root=root, overrides={"data_root": str(root)})
    elapsed = time.perf_counter() - start
    assert file_states(root) == states  # no file written, touched or added
    pd.testing.assert_frame_equal(again, frame, check_exact=True)
    assert elapsed < max(5.0, wall / 4), elapsed


# --- 9. one store, one config -------------------------------------------------------------------
def test_store_refuses_results_of_another_config(smoke):
    root, _, _, _ = smoke
    states = file_states(root)
    with pytest.raises(ValueError, match=r"made with another config.*use another output folder \(--out\)"):
        Sweep(make_config("smoke", {"data_root": str(root), "epochs": 7}), root)
    with pytest.raises(ValueError, match="--out"):
        results("smoke", root=root, overrides={"data_root": str(root), "lr": 0.05})
    # Settings that do not change results are not "another config".
    Sweep(make_config("smoke", {"data_root": str(root / "elsewhere"), "threads": 1, "device": "cpu"}), root)
    assert file_states(root) == states
