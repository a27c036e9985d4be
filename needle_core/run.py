"""One run of the protocol, resumable: a CNN trunk, an eFCN/eLCN branch, a controlled CNN,
or an FCN/eLCN trained from scratch.

Epochs count from the CNN's start: a branch switched at ``t_w`` starts at epoch ``t_w``
from its trunk's checkpoint and trains to the same total budget.  State at "epoch e"
means after e epochs; evaluations, switch checkpoints and resume points all sit on epoch
boundaries, and every epoch's shuffling and dropout are seeded by (seed, epoch), so a run
killed at any moment resumes with bit-identical results (CPU).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from .config import SweepConfig
from .embedding import embed, embedded_layers
from .models import cnn, fcn
from .store import ResultStore, environment
from .subspace import DEVIATION_VERSION, deviation
from .switch import switch
from .train import evaluate, keep_freed_memory, make_optimizer, train_epoch

#: role -> (model family, kind of embedding or None)
ROLES = {"cnn": None, "efcn": "fc", "elcn": "lc", "cnn_control": None, "fcn": "fc", "lcn": "lc"}
BRANCHES = ("efcn", "elcn", "cnn_control")


@dataclass(frozen=True)
class RunSpec:
    """What a run is.  ``switch_time`` is set for branches and controls only."""

    role: str
    arch: str
    width: int
    n_train: int | None
    seed: int
    switch_time: int | None = None
    lr_after: float | None = None

    @property
    def kind(self) -> str | None:
        return ROLES[self.role]

    @property
    def group(self) -> str:
        n = "all" if self.n_train is None else self.n_train
        return f"{self.arch}-w{self.width}-n{n}-s{self.seed}"

    @property
    def run(self) -> str:
        """Run id, also its folder in the store: ``<group>/<role>[-t<t_w>]``."""
        suffix = f"-t{self.switch_time}" if self.role in BRANCHES else ""
        return f"{self.group}/{self.role}{suffix}"

    @property
    def trunk(self) -> str | None:
        """The run whose switch checkpoint this one starts from."""
        return f"{self.group}/cnn" if self.role in BRANCHES else None

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), run=self.run, kind=self.kind)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but no CUDA GPU is visible: use --set device=cpu (or auto).")
    return torch.device(name)


@functools.lru_cache(maxsize=4)
def _data(dataset: str, root: str, n_train: int | None, n_test: int | None, seed: int, device: str):
    from .data import load

    return load(dataset, root=root, n_train=n_train, n_test=n_test, seed=seed, device=device)


def _train_eval_indices(data, size: int | None, seed: int) -> torch.Tensor | None:
    """The fixed, class-balanced training images the train metrics are measured on (None: all)."""
    from .data import balanced_subset

    if size is None:
        return None
    generator = torch.Generator().manual_seed(seed)
    return balanced_subset(data.y_train.cpu(), size, data.num_classes, generator, "train_eval_subset") \
        .to(data.device)


def _precision(model, config: SweepConfig) -> str:
    """What the provenance says the run computed in: the weights' dtype, and bf16 autocast if on."""
    weights = str(next(model.parameters()).dtype)
    return weights if config.precision == "fp32" else f"{weights} weights, {config.precision} autocast"


def _metrics(model, data, config: SweepConfig, epoch: int, run: str, seed: int = 0) -> list[dict]:
    rows = []
    subset = _train_eval_indices(data, config.train_eval_subset, seed)
    x_train, y_train = (data.x_train, data.y_train) if subset is None else (data.x_train[subset], data.y_train[subset])
    for split, x, y in (("train", x_train, y_train), ("test", data.x_test, data.y_test)):
        loss, acc = evaluate(model, x, y, config.eval_batch_size, config.precision)
        rows += [dict(run=run, epoch=epoch, metric=f"{split}_loss", layer="", value=loss),
                 dict(run=run, epoch=epoch, metric=f"{split}_acc", layer="", value=acc)]
    if config.deviation and next(embedded_layers(model), None) is not None:
        for rec in deviation(model).to_dict("records"):
            rows += [dict(run=run, epoch=epoch, metric=m, layer=rec["layer"], value=rec[m])
                     for m in ("delta", "delta_loc", "delta_ws")]
    return rows


def _start(spec: RunSpec, config: SweepConfig, store: ResultStore, data, device):
    """``(model, optimiser, first epoch, notes)`` of a run that has no resume state yet;
    ``notes`` go into the run's provenance (``trunk_recreated``: see
    :func:`recreate_switch_checkpoints`)."""
    shape = data.input_shape
    if spec.role in BRANCHES:
        name = f"switch-{spec.switch_time}"
        state = store.load_checkpoint(spec.trunk, name, map_location=device)
        notes = {}
        if state is None and store.is_finished(spec.trunk):
            # Results are committed, checkpoints are not: on a fresh clone the trunk is
            # re-trained (deterministically) to recreate them, and checked against its record.
            # Under the trunk's lock: its other branches wait, then find the checkpoints.
            with store.lock(spec.trunk) as trunk_lock:
                trunk_lock.acquire()
                if not (store.run_dir(spec.trunk) / f"{name}.pt").exists():
                    gap = recreate_switch_checkpoints(spec, config, store, data, device)
                    notes["trunk_recreated"] = dict(max_abs_diff=gap)
            state = store.load_checkpoint(spec.trunk, name, map_location=device)
        if state is None:
            raise FileNotFoundError(f"{spec.run} needs its trunk's checkpoint at epoch {spec.switch_time}: "
                                    f"run {spec.trunk} first (the sweep orders this for you).")
        model = cnn(spec.arch, ch=spec.width, num_classes=data.num_classes).to(device)
        model.load_state_dict(state["model"])
        optimizer = make_optimizer(model.parameters(), config.lr, config.momentum, config.weight_decay)
        optimizer.load_state_dict(state["optimizer"])
        if spec.role == "cnn_control":  # the same change as the branch, without the embedding
            if spec.lr_after is not None:
                optimizer.param_groups[0]["lr"] = spec.lr_after
            return model, optimizer, spec.switch_time, notes
        model, optimizer = switch(model, optimizer, shape, spec.kind, lr=spec.lr_after)
        return model, optimizer, spec.switch_time, notes
    torch.manual_seed(spec.seed)
    model = cnn(spec.arch, ch=spec.width, num_classes=data.num_classes)
    if spec.role in ("fcn", "lcn"):
        torch.manual_seed(spec.seed)
        model = fcn(model, shape, spec.kind)
    model = model.to(device)
    return model, make_optimizer(model.parameters(), config.lr, config.momentum, config.weight_decay), 0, {}


def recreate_switch_checkpoints(branch: RunSpec, config: SweepConfig, store: ResultStore, data, device) -> float:
    """Re-train the finished trunk of ``branch`` from its seed up to the last switch time of
    the grid, writing every switch checkpoint on the way, without touching its results.

    Returns the largest |difference| between the re-trained trunk's evaluations and those
    recorded in the store (0.0 on the machine that made them; CPU kernels of another
    processor can differ in the last bits, which a warning then reports)."""
    trunk = dataclasses.replace(branch, role="cnn", switch_time=None, lr_after=None)
    recorded = store.metrics(trunk.run)
    recorded = {(r.epoch, r.metric): r.value for r in recorded.itertuples() if r.metric.endswith("_acc")}
    model, optimizer, epoch, _ = _start(trunk, config, store, data, device)
    last, gap = max(config.switch_times), 0.0
    while True:
        if epoch in config.switch_times:
            store.save_checkpoint(trunk.run, f"switch-{epoch}", dict(model=model.state_dict(),
                                                                       optimizer=optimizer.state_dict(), epoch=epoch))
        if epoch in config.eval_epochs:
            for row in _metrics(model, data, config, epoch, trunk.run, trunk.seed):
                if (epoch, row["metric"]) in recorded:
                    gap = max(gap, abs(row["value"] - recorded[epoch, row["metric"]]))
        if epoch >= last:
            break
        train_epoch(model, optimizer, data.x_train, data.y_train, config.batch_size, trunk.seed, epoch,
                    config.precision)
        epoch += 1
    if gap:
        warnings.warn(f"{trunk.run} re-trained to recreate its switch checkpoints differs from its recorded "
                      f"accuracies by up to {gap:.4f} (another processor's kernels?): its branches start from "
                      "the re-trained CNN, recorded in their provenance as trunk_recreated.")
    return gap


def _rebuild(spec: RunSpec, config: SweepConfig, data, device, state: dict):
    """The model and optimiser of a resume state (same architecture, then its weights)."""
    shape = data.input_shape
    model = cnn(spec.arch, ch=spec.width, num_classes=data.num_classes)
    if spec.kind is not None:  # same structure as the saved one; its weights are overwritten
        model = embed(model, shape, spec.kind)
    model = model.to(device)
    model.load_state_dict(state["model"])
    optimizer = make_optimizer(model.parameters(), config.lr, config.momentum, config.weight_decay)
    optimizer.load_state_dict(state["optimizer"])
    return model, optimizer


def cost_of(spec: RunSpec, config: SweepConfig) -> int:
    """Epochs ``spec`` trains (its span: :meth:`SweepConfig.span`)."""
    first, last = config.span(spec.role, spec.switch_time)
    return last - first


#: What :func:`execute` returns, without waiting, for a run that another process trains now.
BUSY = "busy"


def execute(spec: RunSpec, config: SweepConfig, root, on_epoch: Callable[[int], None] | None = None,
            wait: bool = True) -> str:
    """Run ``spec`` to the end of the budget, resuming from its last checkpoint; a finished
    run is never redone.  Returns the run's status: "done", "diverged", "trunk_diverged" (a
    branch whose trunk diverged before its switch time) or "finished" (done before).

    The run is trained under its lock (:mod:`needle_core.store`): while another process
    trains it, this call waits and then (usually) finds it finished, or with ``wait=False``
    returns :data:`BUSY` at once."""
    store = ResultStore(root)
    if store.is_finished(spec.run):
        return "finished"
    with store.lock(spec.run) as lock:
        if not lock.acquire(wait=wait):
            return BUSY
        if store.is_finished(spec.run):  # by the process we waited for
            return "finished"
        return _train(spec, config, store, on_epoch)


def _train(spec: RunSpec, config: SweepConfig, store: ResultStore, on_epoch: Callable[[int], None] | None) -> str:
    """:func:`execute` of an unfinished run whose lock this process holds."""
    digest = config.digest()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if device.type == "cpu":
        keep_freed_memory()
    trunk = store.run_provenance(spec.trunk) if spec.trunk else None
    if trunk is not None and trunk["status"] == "diverged" and trunk["diverged_epoch"] <= spec.switch_time:
        # The trunk never reached t_w: no checkpoint to start from.  Recorded, not dropped
        # (paper.md §8), so that the sweep finishes and is not retried.
        provenance = dict(spec.to_dict(), status="trunk_diverged", diverged_epoch=trunk["diverged_epoch"],
                          config=config.to_dict(), config_digest=digest, precision=None, wall_time_s=0.0,
                          **environment(device))
        store.finish(spec.run, spec.to_dict(), [], provenance)
        if on_epoch:
            on_epoch(cost_of(spec, config))
        return "trunk_diverged"
    data = _data(config.dataset, config.data_root, spec.n_train, config.n_test, spec.seed, str(device))
    resume = store.load_checkpoint(spec.run, "resume", map_location=device)
    if resume is not None and resume.get("config_digest", digest) != digest:
        raise ValueError(f"{store.root} holds a resume state of {spec.run} made with another config "
                         f"({resume['config_digest']} != {digest}): use another output folder (--out).")
    if resume is not None:
        model, optimizer = _rebuild(spec, config, data, device, resume)
        epoch, rows, wall, notes = resume["epoch"], resume["rows"], resume["wall_time_s"], resume.get("notes", {})
    else:
        model, optimizer, epoch, notes = _start(spec, config, store, data, device)
        rows, wall = [], 0.0
    started, last_save, status, diverged_epoch = time.monotonic(), time.monotonic(), "done", None
    evals = set(config.run_eval_epochs(spec.role, spec.switch_time))
    last = config.span(spec.role, spec.switch_time)[1]
    while True:
        if epoch in evals and not any(r["epoch"] == epoch and r["metric"] == "test_acc" for r in rows):
            rows += _metrics(model, data, config, epoch, spec.run, spec.seed)
        if spec.role == "cnn" and epoch in config.switch_times:
            store.save_checkpoint(spec.run, f"switch-{epoch}", dict(model=model.state_dict(),
                                                                      optimizer=optimizer.state_dict(), epoch=epoch))
        if epoch == last:
            break
        if time.monotonic() - last_save >= 60 * config.checkpoint_minutes:
            store.save_checkpoint(spec.run, "resume", dict(
                model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch, rows=rows,
                wall_time_s=wall + time.monotonic() - started, config_digest=digest, notes=notes))
            last_save = time.monotonic()
        loss = float(train_epoch(model, optimizer, data.x_train, data.y_train, config.batch_size, spec.seed, epoch,
                                 config.precision))
        epoch += 1
        # The mean mini-batch loss of the epoch: free, and what shows an oscillating run.
        rows.append(dict(run=spec.run, epoch=epoch, metric="epoch_loss", layer="", value=loss))
        if on_epoch:
            on_epoch(1)
        if not math.isfinite(loss) or loss > config.divergence_loss:
            status, diverged_epoch = "diverged", epoch
            if on_epoch:
                on_epoch(last - epoch)
            break
    if config.save_final and status == "done":
        store.save_checkpoint(spec.run, "final", dict(model=model.state_dict(), spec=spec.to_dict()))
    provenance = dict(spec.to_dict(), status=status, diverged_epoch=diverged_epoch, config=config.to_dict(),
                      config_digest=digest, precision=_precision(model, config),
                      deviation_version=DEVIATION_VERSION if config.deviation else None,
                      wall_time_s=wall + time.monotonic() - started, **notes, **environment(device))
    store.finish(spec.run, spec.to_dict(), rows, provenance)
    return status
