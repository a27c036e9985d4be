"""Sweeps: the grid of runs as a graph (each branch needs its trunk's checkpoints), handed to
an executor.

Each CNN *trunk* (architecture, width, n_train, seed) is trained once and saves a
checkpoint at every switch time; each eFCN/eLCN *branch* starts from one of them.  When
anything besides the embedding changes at the switch (``lr_after``), a *controlled CNN*
continues the trunk from the same checkpoint with the same change: that CNN, not the
trunk, is then the baseline of "the eFCN beats the CNN" (paper.md §8).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .config import SweepConfig, validate
from .run import RunSpec, execute
from .store import ResultStore


def plan(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, trunks before the branches that need them."""
    runs = []
    for arch in config.archs:
        for width in config.widths:
            for n_train in config.n_trains:
                for seed in config.seeds:
                    base = dict(arch=arch, width=width, n_train=n_train, seed=seed)
                    runs.append(RunSpec("cnn", **base))
                    runs += [RunSpec(b, **base) for b in config.baselines]
                    for t in config.switch_times:
                        runs += [RunSpec("efcn" if k == "fc" else "elcn", **base, switch_time=t,
                                         lr_after=config.lr_after) for k in config.kinds]
                        if config.lr_after is not None and config.lr_after != config.lr:
                            runs.append(RunSpec("cnn_control", **base, switch_time=t, lr_after=config.lr_after))
    return runs


def cost(spec: RunSpec, config: SweepConfig) -> int:
    """Epochs a run trains (what the progress bar counts)."""
    return config.epochs - (spec.switch_time or 0)


@dataclass
class Task:
    """One node of the graph: a run and the runs it needs."""

    spec: RunSpec
    needs: list[str] = field(default_factory=list)


def graph(config: SweepConfig) -> list[Task]:
    return [Task(spec, [spec.trunk] if spec.trunk else []) for spec in plan(config)]


class Executor(Protocol):
    """Runs a graph of tasks, each with ``run.execute(spec, config, root)`` (idempotent,
    resumable), wherever it likes (this process, or the workers of a cluster: everything it
    is given pickles); returns ``{run: status}``.  ``needle_core.cluster`` has the Dask one."""

    def __call__(self, tasks: list[Task], config: SweepConfig, root: Path, progress: bool = True) -> dict[str, str]: ...


def local_executor(tasks: list[Task], config: SweepConfig, root: Path, progress: bool = True) -> dict[str, str]:
    """Serial, in graph order (one GPU, or one run at a time using every CPU core), with a
    progress bar over the epochs still to train."""
    from tqdm.auto import tqdm

    store = ResultStore(root)
    todo = [t for t in tasks if not store.is_finished(t.spec.run)]
    bar = tqdm(total=sum(cost(t.spec, config) for t in todo), unit="epoch", disable=not progress,
               desc=f"sweep {config.name} ({len(todo)}/{len(tasks)} runs to do)")
    done: dict[str, str] = {}
    try:
        for task in tasks:
            missing = [n for n in task.needs if n not in done]
            if missing:
                raise RuntimeError(f"{task.spec.run} scheduled before {missing}: the graph is not in dependency order.")
            bar.set_postfix_str(task.spec.run, refresh=False)
            done[task.spec.run] = execute(task.spec, config, root, on_epoch=bar.update)
    finally:
        bar.close()
    return done


EXECUTORS: dict[str, Executor] = {"local": local_executor}


class Sweep:
    """A config, its result store and an executor.  ``run()`` does what is missing."""

    def __init__(self, config: SweepConfig, root: str | Path, executor: str | Executor = "local"):
        validate(config)  # a config built by hand fails here too, before any training
        self.config, self.store = config, ResultStore(root)
        if isinstance(executor, str):
            if executor not in EXECUTORS:
                raise ValueError(f"unknown executor {executor!r}: choose one of {sorted(EXECUTORS)}.")
            executor = EXECUTORS[executor]
        self.executor = executor
        self._check_store()

    def _check_store(self) -> None:
        """Refuse to mix results of a different config into this store."""
        runs = self.store.provenance()
        digest = self.config.digest()
        for run, other in zip(runs.get("run", []), runs.get("config_digest", [])):
            if other != digest:
                raise ValueError(f"{self.store.root} holds run {run} made with another config "
                                 f"({other} != {digest}): use another output folder (--out).")

    def run(self, progress: bool = True) -> pd.DataFrame:
        if self.config.threads:  # also for what the caller computes next (CPU results depend on it)
            import torch

            torch.set_num_threads(self.config.threads)
        self.executor(graph(self.config), self.config, self.store.root, progress)
        return self.results()

    def results(self) -> pd.DataFrame:
        return self.store.results()


def default_root(profile: str) -> Path:
    return Path("runs") / profile


def results(profile: str = "smoke", root: str | Path | None = None, overrides: dict | None = None,
            progress: bool = False) -> pd.DataFrame:
    """The tidy results of a profile (with ``overrides``), running whatever is missing first.

    Notebooks call this: a finished sweep is read, never re-trained.  ``root`` defaults to
    ``runs/<profile>``.
    """
    from .config import make_config

    config = make_config(profile, overrides)
    return Sweep(config, root or default_root(profile)).run(progress=progress)
