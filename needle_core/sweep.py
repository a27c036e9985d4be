"""Sweeps: the grid of runs as a graph (each branch needs its trunk's checkpoints), handed to
an executor.

Each CNN *trunk* (architecture, width, n_train, seed) is trained once and saves a
checkpoint at every switch time; each eFCN/eLCN *branch* starts from one of them.  When
anything besides the embedding changes at the switch (``lr_after``), a *controlled CNN*
continues the trunk from the same checkpoint with the same change: that CNN, not the
trunk, is then the baseline of "the eFCN beats the CNN" (paper.md §8).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .config import SweepConfig, validate
from .run import BUSY, RunSpec, cost_of, execute
from .io import atomic_write_json
from .lock import FileLock
from .store import ResultStore, git_commit


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


def cost(spec, config: SweepConfig) -> int:
    """Epochs a run trains (what the progress bar counts); 0 for a curve task."""
    return 0 if spec.role == "curve" else cost_of(spec, config)


@dataclass
class Task:
    """One node of the graph: a run (a :class:`~needle_core.run.RunSpec`) or a curve task
    (a :class:`~needle_core.landscape.CurveSpec`, ``spec.role == "curve"``) and the runs it
    needs."""

    spec: RunSpec
    needs: list[str] = field(default_factory=list)


def graph(config: SweepConfig) -> list[Task]:
    """Every run, trunks before their branches, then the curve tasks of
    ``config.landscape_switch_times`` (:func:`needle_core.landscape.curve_tasks`), each
    needing its two endpoint runs: it runs as soon as they are finished, where they trained."""
    from .landscape import curve_tasks

    return ([Task(spec, [spec.trunk] if spec.trunk else []) for spec in plan(config)]
            + [Task(spec, spec.needs) for spec in curve_tasks(config)])


def finished(store: ResultStore, spec) -> bool:
    """Whether a task of the graph is done: a run's provenance, a curve task's record."""
    if spec.role == "curve":
        from .landscape import curve_finished

        return curve_finished(store.root, spec)
    return store.is_finished(spec.run)


def execute_task(spec, config: SweepConfig, root, on_epoch=None, wait: bool = True) -> str:
    """:func:`needle_core.run.execute` for a run, :func:`needle_core.landscape.execute_curve`
    for a curve task (what every executor calls)."""
    if spec.role == "curve":
        from .landscape import execute_curve

        return execute_curve(spec, config, root, wait=wait)
    return execute(spec, config, root, on_epoch=on_epoch, wait=wait)


class Executor(Protocol):
    """Runs a graph of tasks, each with ``run.execute(spec, config, root)`` (idempotent,
    resumable), wherever it likes (this process, or the workers of a cluster: everything it
    is given pickles); returns ``{run: status}``.  ``needle_core.cluster`` has the Dask one."""

    def __call__(self, tasks: list[Task], config: SweepConfig, root: Path, progress: bool = True) -> dict[str, str]: ...


class RunsFailed(RuntimeError):
    """Some runs raised; every other run (those that did not need a failed one) ran on.
    ``statuses``: each run's status, "failed" for those; ``errors``: ``{run: exception}``."""

    def __init__(self, statuses: dict[str, str], errors: dict[str, BaseException], root):
        self.statuses, self.errors = statuses, errors
        super().__init__(f"{len(errors)} of {len(statuses)} runs failed (the others are in {root}; after fixing "
                         f"the cause, run the sweep again to retry them): " + ", ".join(sorted(errors)))


class NeedFailed(RuntimeError):
    """A run was not started because a run it needs failed."""


def fatal(error: BaseException) -> bool:
    """Errors of the machine or of the data set, not of one run: every other run would meet
    them too, so they stop the sweep instead of failing its runs one by one."""
    from .data import DatasetNotFound
    from .io import DiskFull

    return isinstance(error, (DiskFull, DatasetNotFound))


def local_executor(tasks: list[Task], config: SweepConfig, root: Path, progress: bool = True) -> dict[str, str]:
    """Serial, in graph order (one GPU, or one run at a time using every CPU core), with a
    progress bar over the epochs still to train.

    A run that another process trains now (a second sweep of the store) is put off, with
    the runs that need it, until the others are done, then waited for.  A run that raises
    fails alone: the runs that need it are not started, the others run on, and
    :class:`RunsFailed` says which failed at the end."""
    from tqdm.auto import tqdm

    store = ResultStore(root)
    todo = [t for t in tasks if not finished(store, t.spec)]
    bar = tqdm(total=sum(cost(t.spec, config) for t in todo), unit="epoch", disable=not progress,
               desc=f"sweep {config.name} ({len(todo)}/{len(tasks)} runs to do)")
    done: dict[str, str] = {}
    errors: dict[str, BaseException] = {}

    def attempt(task: Task, wait: bool) -> None:
        run = task.spec.run
        failed = [n for n in task.needs if n in errors]
        if failed:
            done[run], errors[run] = "failed", NeedFailed(f"not started: it needs {failed[0]}, which failed")
            return
        bar.set_postfix_str(run, refresh=False)
        try:
            status = execute_task(task.spec, config, root, on_epoch=bar.update, wait=wait)
        except Exception as error:
            if fatal(error):
                raise
            done[run], errors[run] = "failed", error
            return
        if status == "finished" and wait:  # put off, then trained by another process
            bar.update(cost(task.spec, config))
        done[run] = status

    try:
        put_off = []
        for task in tasks:
            missing = [n for n in task.needs if n not in done]
            if missing:
                raise RuntimeError(f"{task.spec.run} scheduled before {missing}: the graph is not in dependency order.")
            if any(done[n] == BUSY for n in task.needs):
                done[task.spec.run] = BUSY
            else:
                attempt(task, wait=False)
            if done[task.spec.run] == BUSY:
                put_off.append(task)
        for task in put_off:  # in graph order: a trunk before the runs that need it
            attempt(task, wait=True)
    finally:
        bar.close()
    if errors:
        raise RunsFailed(done, errors, root)
    return done


EXECUTORS: dict[str, Executor] = {"local": local_executor}


class Sweep:
    """A config, its result store and an executor.  ``run()`` does what is missing.

    The store records the config that made it (``config.json``: every field, the digest and
    the data set's content hash), so that a clone can re-render it with exactly that config.
    ``run()`` holds the store's lock while it trains (sweeps of this config may share the
    store; one of another config is refused: :mod:`needle_core.store`).
    """

    def __init__(self, config: SweepConfig, root: str | Path, executor: str | Executor = "local",
                 allow_dirty: bool = False):
        validate(config)  # a config built by hand fails here too, before any training
        empty = [name for name in ("archs", "widths", "n_trains", "seeds") if not getattr(config, name)]
        if empty:
            raise ValueError(f"invalid sweep config: {empty[0]}=[] gives no run to train or read: give at least one "
                             f"value (--set {empty[0]}=...).")
        self.config, self.store, self.allow_dirty = config, ResultStore(root), allow_dirty
        probe = self.store.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise ValueError(f"output folder {self.store.root}: {probe} is a file, not a folder: give a folder for the "
                             "result store (--out), created if missing.")
        if isinstance(executor, str):
            if executor not in EXECUTORS:
                raise ValueError(f"unknown executor {executor!r}: choose one of {sorted(EXECUTORS)}.")
            executor = EXECUTORS[executor]
        self.executor = executor
        if config.precision != "fp32" and published(self.store.root):  # before the store's own checks
            raise ValueError(f"{self.store.root} is a published result store (tracked by git) and precision="
                             f"{config.precision!r}: published editions train in fp32 only (bf16 changes every "
                             f"trained number). Write to a scratch store instead (--out runs/scratch-bf16, or a "
                             f"folder git ignores), or set precision=fp32.")
        self.missing_data: Exception | None = None  # set when the data set is not on this machine
        self.digest = self._digest()
        self._check_store()

    @property
    def record(self) -> dict | None:
        """The store's ``config.json`` (None for a store that has none yet)."""
        path = self.store.root / "config.json"
        if not path.exists():
            if self.store.has_manifest() and self.store.listed(path) is not None and self.store.finished_runs():
                self.store.read(path)  # gone although recorded: named, with the fix
            return None
        from .store import _parse

        return _parse(self.store.root, "config.json", self.store.read(path))

    def _digest(self) -> str:
        """The config's digest; where its data set is not on this machine, the one recorded
        by the store for the same config (enough to read finished runs, not to train)."""
        from .config import _NOT_IN_DIGEST, recorded
        from .data import DatasetNotFound

        try:
            return self.config.digest()
        except DatasetNotFound as missing:
            record = self.record
            same = record is not None and all(recorded(record["config"], k) == v
                                              for k, v in self.config.to_dict().items() if k not in _NOT_IN_DIGEST)
            if not same:
                raise
            self.missing_data = missing
            return record["digest"]

    def _check_store(self, running: str | None = None) -> None:
        """Refuse to mix results of a different config into this store; ``running`` names
        the sweep that writes it now ("" for none, None to look at the store's lock)."""
        if running is None:
            lock = FileLock(self.store.root / ".lock")
            running = f"; a sweep writes it now: {lock.holder()}" if lock.held() else ""
        record = self.record
        if record is not None and record["digest"] != self.digest:
            from .config import _NOT_IN_DIGEST, recorded

            # Over the fields of both: a store made before a field existed records none (its default).
            mine = self.config.to_dict()
            differ = sorted(k for k in set(record["config"]) | set(mine)
                            if k not in _NOT_IN_DIGEST and mine.get(k) != recorded(record["config"], k))
            if not differ or differ == ["dataset"]:  # the same config on other data (or another copy of it)
                raise ValueError(f"{self.store.root} was made from another data set ({record['dataset_identity']}) "
                                 f"than {self.config.dataset!r} ({_identity_or_missing(self.config.dataset)}): "
                                 f"run into a new folder, e.g. --out {self.store.root}-mine.")
            raise ValueError(f"{self.store.root} was made with another config (differs in {', '.join(differ)}; "
                             f"{record['digest']} != {self.digest}{running}): use another output folder (--out).")
        for run in self.store.finished_runs():
            other = self.store.run_provenance(run).get("config_digest")
            if other != self.digest:
                raise ValueError(f"{self.store.root} holds run {run} made with another config "
                                 f"({other} != {self.digest}{running}): use another output folder (--out).")

    def tasks(self, only: list[str] | None = None) -> list[Task]:
        """The graph, or the runs whose id matches one of the glob patterns ``only`` (e.g.
        ``"*-s0/efcn-t[0-4]"``) together with the trunks they start from."""
        tasks = graph(self.config)
        if not only:
            return tasks
        chosen = {t.spec.run for t in tasks if any(fnmatch.fnmatchcase(t.spec.run, p) for p in only)}
        if not chosen:
            raise ValueError(f"no run of the sweep matches {only}: list them with --dry-run.")
        needs = {t.spec.run: t.needs for t in tasks}
        stack = list(chosen)
        while stack:  # what they need, and what that needs (a curve task needs a branch, which needs its trunk)
            for n in needs.get(stack.pop(), []):
                if n not in chosen:
                    chosen.add(n)
                    stack.append(n)
        return [t for t in tasks if t.spec.run in chosen]

    def run(self, progress: bool = True, only: list[str] | None = None) -> pd.DataFrame:
        if self.config.threads:  # also for what the caller computes next (CPU results depend on it)
            import torch

            torch.set_num_threads(self.config.threads)
        tasks = self.tasks(only)
        todo = [t.spec.run for t in tasks if not finished(self.store, t.spec)]
        self.statuses = {t.spec.run: "finished" for t in tasks}
        if not todo:
            self._check_store()  # finished since __init__, by a sweep of another config?
            self._remove_leftovers()
            return self.results()
        self._preflight()  # every input checked before anything is written
        with FileLock(self.store.root / ".lock") as lock:
            alone = lock.acquire(exclusive=True, wait=False)
            if not alone:  # another sweep writes the store: join it if it runs this config
                lock.acquire(exclusive=False)
            # Checked again under the lock: a sweep started beside this one may have
            # recorded its config since __init__ (it records it under the lock too).
            self._check_store(running="" if alone else f"; a sweep writes it now: {lock.holder()}")
            self._may_write(todo)
            if alone:  # no other writer alive: what killed ones left is garbage
                self.store.remove_leftovers()
                lock.acquire(exclusive=False)
            try:
                self.statuses = self.executor(tasks, self.config, self.store.root, progress)
            except RunsFailed as failed:
                self.statuses = failed.statuses
                raise
        return self.results()

    def _remove_leftovers(self) -> None:
        """What killed writers left, removed under the store's lock taken exclusively (no
        other writer alive); nothing is written (no lock file either) where there is none."""
        if not self.store.root.is_dir() or not self.store.leftovers():
            return
        with FileLock(self.store.root / ".lock") as lock:
            try:
                if not lock.acquire(exclusive=True, wait=False):
                    return  # a sweep writes the store: its leftovers are its own business
            except OSError:  # a read-only copy of a store: nothing can be removed
                return
            self.store.remove_leftovers()

    def _preflight(self) -> None:
        """Everything a start needs, checked before anything is written: the store is not
        an old one (or damaged), the output folder can be written, the device exists, the
        data set can be read, its images suit the architectures and holds every subset."""
        import os
        import tempfile

        from .data import BadDataset, DatasetNotFound, check
        from .run import resolve_device

        if self.store.is_old():
            raise self.store.old_store_error()
        probe = self.store.root
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise ValueError(f"output folder {self.store.root}: {probe} is a file, not a folder: give another --out.")
        try:
            fd, name = tempfile.mkstemp(dir=probe, prefix=".write-test-")
            os.close(fd)
            os.unlink(name)
        except OSError as error:
            raise ValueError(f"output folder {self.store.root} cannot be written ({probe}: {error.strerror}): give a "
                             f"folder you can write (--out).") from None
        try:
            device = resolve_device(self.config.device)
        except RuntimeError as error:
            raise ValueError(f"invalid sweep config: {error}") from None
        if self.config.precision == "bf16" and device.type == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise ValueError(f"invalid sweep config: precision='bf16' but {torch.cuda.get_device_name(device)} has "
                                 "no bf16 support: use precision=fp32, or a GPU from Ampere on.")
        if self.missing_data is not None:
            return  # _may_write says so, with the number of runs to do
        try:
            shape = check(self.config.dataset, self.config.data_root, self.config.n_trains, self.config.n_test)
        except (BadDataset, DatasetNotFound):
            raise
        except OSError as error:  # the data folder itself (data_root) cannot be written
            raise ValueError(f"data folder {self.config.data_root} ({getattr(error, 'filename', '') or ''}): "
                             f"{error.strerror or error}: give a folder you can write (--set data_root=...).") from None
        import torch

        from .models import cnn

        for arch in self.config.archs:
            try:
                with torch.no_grad():
                    cnn(arch, ch=self.config.widths[0], num_classes=10)(torch.zeros(2, *shape, device="cpu"))
            except Exception as error:
                raise ValueError(f"dataset {self.config.dataset}: its images are {shape[0]}x{shape[1]}x{shape[2]} "
                                 f"(CxHxW) and architecture {arch!r} cannot take them ({_first_line(error)}): "
                                 f"give 32x32 images (CIFAR's size).") from None

    def _may_write(self, todo: list[str]) -> None:
        """Before training anything: the data set is here, a published store is written from
        a committed tree only, and the store records this config."""
        if self.missing_data is not None:
            raise ValueError(f"{len(todo)} runs of {self.store.root} still need training, on the data set it was made "
                             f"from ({self.record['dataset_identity']}), which is not here: {self.missing_data}") \
                from None
        commit = git_commit()
        if commit and commit.endswith("-dirty") and published(self.store.root) and not self.allow_dirty:
            raise ValueError(f"{self.store.root} is a published result store (tracked by git) and the working tree "
                             f"has uncommitted changes: commit them first, so that every run names the code that "
                             f"made it, or pass --allow-dirty (python) allow_dirty=True. {len(todo)} runs to do.")
        from .data import identity

        record = dict(config=self.config.to_dict(), digest=self.digest, dataset_identity=identity(self.config.dataset))
        self.store.writable()  # a new store's manifest first: config.json is recorded in it
        if self.record != record:
            atomic_write_json(self.store.root / "config.json", record)

    def results(self) -> pd.DataFrame:
        return self.store.results()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _identity_or_missing(dataset: str) -> str:
    from .data import DatasetNotFound, identity

    try:
        return identity(dataset)
    except DatasetNotFound:
        return "not on this machine"


def published(root: str | Path) -> bool:
    """Whether ``root`` lies in a git work tree and is not ignored by it: its results are
    meant to be committed (``runs/cpu``), unlike a scratch store (``runs/smoke``, ``/tmp``)."""
    import subprocess

    root = Path(root).resolve()
    probe = root if root.exists() else root.parent
    while not probe.exists():
        probe = probe.parent
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=probe, capture_output=True,
                                text=True, timeout=10).stdout.strip() == "true"
        if not inside:
            return False
        ignored = subprocess.run(["git", "check-ignore", "-q", str(root / "config.json")], cwd=probe,
                                 capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    return not ignored


def default_root(profile: str) -> Path:
    return Path("runs") / profile


def results(profile: str = "smoke", root: str | Path | None = None, overrides: dict | None = None,
            progress: bool = False, train: bool = True) -> pd.DataFrame:
    """The tidy results of a profile (with ``overrides``), running whatever is missing first
    (``train=False``: only what the store has, e.g. a campaign still running).

    Notebooks call this: a finished sweep is read, never re-trained.  ``root`` defaults to
    ``runs/<profile>``.
    """
    from .config import make_config

    sweep = Sweep(make_config(profile, overrides), root or default_root(profile))
    if train:
        return sweep.run(progress=progress)
    # Runs only: what this returns.  Curve tasks are read (and their absence said) by page 6b and reproduce.
    missing = [t.spec.run for t in sweep.tasks() if t.spec.role != "curve" and not sweep.store.is_finished(t.spec.run)]
    if missing:
        import warnings

        warnings.warn(f"{sweep.store.root} lacks {len(missing)} of the config's runs (not trained yet, or deleted): "
                      f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; train them with "
                      f"python -m needle_core sweep --profile {profile} --out {sweep.store.root}.", stacklevel=2)
    return sweep.results()
