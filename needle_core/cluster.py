"""Sweeps that outgrow one machine: the sweep graph run on a Dask cluster.

There is no scheduler here: each run of the graph (:func:`needle_core.sweep.graph`) becomes
one Dask future that calls :func:`needle_core.run.execute` on a worker, and a branch's
future takes its trunk's future as an argument, so Dask starts a branch only once its
trunk (and so the trunk's switch checkpoints) is finished.  Everything else comes from
the result store (:mod:`needle_core.store`) and ``execute``:

* every run writes its own folder of the shared store (atomically; a run is finished
  exactly when its ``provenance.json`` exists), so the workers need a shared file system
  and nothing is sent back but a small status record;
* ``execute`` is idempotent and resumable, so a task that runs twice (a retry, a task
  recomputed after its worker died, a second sweep over the same store) never duplicates
  or corrupts results: a finished run is skipped, an unfinished one resumes from its last
  ``resume.pt`` (every ``checkpoint_minutes``), and a run that another process trains now
  is waited for under its lock (the kernel drops the lock of a worker that dies), then
  found finished.  The sweep's process holds the store's lock meanwhile.

A worker that dies mid-run (kill -9, out of memory, a pre-empted node) takes its task with
it; the scheduler gives the task to another worker, where it resumes from the checkpoint
(up to ``distributed.scheduler.allowed-failures`` deaths per task, 3 by default).  An
exception inside a task is retried ``retries`` times (Dask's task retries, which do not
count deaths).  The nanny of a :class:`~distributed.LocalCluster` respawns the dead worker.

    from needle_core.cluster import make_executor
    from needle_core.sweep import Sweep

    Sweep(config, "runs/paper", make_executor("dask", "tcp://head-node:8786")).run()
    Sweep(config, "runs/paper", make_executor("dask")).run()  # a LocalCluster of this machine

or ``python -m needle_core sweep --profile paper --executor dask [--scheduler tcp://HOST:PORT]``
(book/cluster.md: SLURM, multi-GPU nodes, merging result folders).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import platform
import uuid
from dataclasses import dataclass
from pathlib import Path

from .config import SweepConfig
from .run import RunSpec
from .store import ResultStore
from .sweep import Executor, RunsFailed, Task, execute_task, fatal, finished, local_executor

#: Environment variable a worker reads for its torch thread count (set by :func:`local_cluster`;
#: ``--set threads=N`` in the config overrides it).
THREADS_ENV = "NEEDLE_TORCH_THREADS"


# -- what runs on a worker --------------------------------------------------------------------
def run_task(spec: RunSpec, config: SweepConfig, root: str, *needs) -> dict:
    """One run on a worker: ``execute(spec, config, root)``; ``needs`` are the results of the
    runs it depends on (only there so that Dask orders them first).  Returns a small record:
    the run, its status, whether it resumed from a checkpoint, and where it ran."""
    threads = os.environ.get(THREADS_ENV)
    if threads and not config.threads:
        import torch

        torch.set_num_threads(int(threads))
    resumed = spec.role != "curve" and (ResultStore(root).run_dir(spec.run) / "resume.pt").exists()
    status = execute_task(spec, config, root)
    return dict(run=spec.run, status=status, resumed=resumed and status != "finished", pid=os.getpid(),
                host=platform.node())


def prepare_data(config: SweepConfig) -> None:
    """Download and decode the dataset once, before any run starts, so that the first runs
    do not all download it into ``data_root`` at the same moment."""
    if config.dataset == "synthetic":  # generated in memory, nothing on disk
        return None
    from .data import load

    load(config.dataset, config.data_root, device="cpu")
    return None


# -- the cluster ------------------------------------------------------------------------------
def cpu_count() -> int:
    """Cores this process may use (affinity and cgroup quota included)."""
    from dask.system import CPU_COUNT

    return CPU_COUNT


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set (as SLURM sets it for a
    job), else every GPU torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_plan(device: str = "auto", gpus: list[str] | None = None, cores: int | None = None,
                n_workers: int | None = None) -> list[dict]:
    """One dict per worker of a local cluster: its ``env`` and ``resources``.

    With GPUs (``device`` auto or cuda, and ``gpus`` not empty): one worker per GPU, pinned to
    it by ``CUDA_VISIBLE_DEVICES`` and declaring the resource ``GPU=1``, the cores shared
    among them.  On the CPU: ``n_workers`` workers (default: one per core), each with
    ``cores // n_workers`` torch threads, so that workers × threads never exceeds the cores.
    Every worker runs one task at a time (one Dask thread)."""
    cores = cores or cpu_count()
    gpus = (visible_gpus() if device != "cpu" else []) if gpus is None else gpus
    if device == "cpu":
        gpus = []
    if gpus:
        if n_workers is not None and n_workers != len(gpus):
            raise ValueError(f"{len(gpus)} GPUs visible but n_workers={n_workers}: a local GPU cluster has one "
                             f"worker per GPU (set CUDA_VISIBLE_DEVICES to use fewer).")
        threads = max(1, cores // len(gpus))
        return [dict(env=_thread_env(threads) | {"CUDA_VISIBLE_DEVICES": g}, resources={"GPU": 1}) for g in gpus]
    if device.startswith("cuda"):
        raise RuntimeError(f"device={device!r} but no GPU is visible: use --set device=cpu (or auto).")
    n_workers = n_workers or cores
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers}: use at least 1.")
    return [dict(env=_thread_env(max(1, cores // n_workers)), resources={})] * n_workers


def _thread_env(threads: int) -> dict[str, str]:
    return {THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads)}


def local_cluster(device: str = "auto", n_workers: int | None = None, **kwargs):
    """A :class:`~distributed.LocalCluster` laid out by :func:`worker_plan`: one worker per
    GPU, each pinned to its GPU, or CPU workers that do not oversubscribe the cores.  Worker
    processes are watched by nannies, which respawn a worker that dies.  ``kwargs`` go to
    ``LocalCluster`` (e.g. ``dashboard_address=":8787"``, ``memory_limit``)."""
    from distributed import LocalCluster
    from distributed.system import MEMORY_LIMIT

    plan = worker_plan(device, n_workers=n_workers)

    class PinnedCluster(LocalCluster):
        """LocalCluster whose worker ``i`` gets ``plan[i]``'s environment and resources
        (kept by its nanny across respawns)."""

        def new_worker_spec(self):
            name = min(set(range(len(plan))) - set(self.worker_spec))
            spec = copy.deepcopy(self.new_spec)
            spec["options"]["env"] = {**spec["options"].get("env", {}), **plan[name]["env"]}
            if plan[name]["resources"]:
                spec["options"]["resources"] = plan[name]["resources"]
            return {name: spec}

    kwargs.setdefault("dashboard_address", ":8787" if _has_bokeh() else None)
    kwargs.setdefault("memory_limit", MEMORY_LIMIT // len(plan))
    cluster = PinnedCluster(n_workers=0, threads_per_worker=1, processes=True, **kwargs)
    cluster.scale(len(plan))
    cluster.wait_for_workers(len(plan))
    return cluster


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def executing(client) -> dict[str, dict]:
    """What each worker is doing now: ``{address: {"pid": ..., "runs": [run, ...]}}`` (to
    watch a sweep, or to find the worker of a run)."""

    def probe(dask_worker):
        return dict(pid=os.getpid(), runs=[run_of(ts.key) for ts in dask_worker.state.executing])

    return client.run(probe)


def run_of(key) -> str:
    """The run of a task key ``"<run>@<token>"``."""
    return str(key).rsplit("@", 1)[0]


# -- the executor -----------------------------------------------------------------------------
@dataclass
class DaskExecutor:
    """An :class:`~needle_core.sweep.Executor` that runs every run of the graph as one Dask
    task.

    ``scheduler``: a scheduler address (``"tcp://HOST:8786"``), the JSON file that
    ``dask scheduler --scheduler-file`` wrote, a ``distributed.Client`` or a cluster object
    (``SLURMCluster``, ``LocalCluster``); ``None`` starts
    :func:`local_cluster` for the sweep's device and closes it at the end.  ``retries``:
    times a task that raised is tried again.  ``resources``: worker resources each task
    needs (e.g. ``{"GPU": 1}`` when the workers were started with ``--resources GPU=1``).
    ``n_workers`` (local cluster only): CPU workers, default one per core.

    After a call, ``records`` holds each executed run's record (:func:`run_task`: status,
    whether it resumed, host and pid of the worker that finished it).
    """

    scheduler: object = None
    retries: int = 2
    resources: dict | None = None
    n_workers: int | None = None
    records: list[dict] = dataclasses.field(default_factory=list)

    def __call__(self, tasks: list[Task], config: SweepConfig, root, progress: bool = True) -> dict[str, str]:
        from distributed import as_completed
        from tqdm.auto import tqdm

        # Workers may run elsewhere: give them absolute paths (on the shared file system).
        root = str(Path(root).resolve())
        if not Path(config.data_root).is_absolute():
            config = dataclasses.replace(config, data_root=str(Path(config.data_root).resolve()))
        store = ResultStore(root)
        done = {t.spec.run: "finished" for t in tasks if finished(store, t.spec)}
        todo = [t for t in tasks if t.spec.run not in done]
        self.records = []
        if not todo:
            return done

        client, owned = self._connect(config)
        token = uuid.uuid4().hex[:8]
        futures, failed = {}, {}
        try:
            prepared = client.submit(prepare_data, config, key=f"needle-data-{token}", retries=self.retries,
                                     resources=self.resources)
            needed = {n for t in todo for n in t.needs}
            for task in todo:  # graph order: a trunk's future exists before its branches'
                missing = [n for n in task.needs if n not in futures and n not in done]
                if missing:
                    raise RuntimeError(f"{task.spec.run} scheduled before {missing}: the graph is not in "
                                       f"dependency order.")
                deps = [futures[n] for n in task.needs if n in futures] or [prepared]
                future = client.submit(run_task, task.spec, config, root, *deps, key=f"{task.spec.run}@{token}",
                                       retries=self.retries, resources=self.resources,
                                       priority=1 if task.spec.run in needed else 0)  # trunks first
                futures[task.spec.run] = future
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            bar = tqdm(total=len(futures), unit="run", disable=not progress,
                       desc=f"sweep {config.name} on dask ({workers} workers, {len(done)}/{len(tasks)} finished)")
            try:
                for future in as_completed(list(futures.values())):
                    run = run_of(future.key)
                    if future.status == "finished":
                        record = future.result()
                        self.records.append(record)
                        done[run] = record["status"]
                    else:  # errored; its branches err with the same exception
                        done[run], failed[run] = "failed", future.exception()
                    bar.set_postfix_str(run, refresh=False)
                    bar.update(1)
            finally:
                bar.close()
        except BaseException:
            client.cancel(list(futures.values()))
            raise
        finally:
            if owned:
                owned()
        if failed:
            first = next(iter(failed.values()))
            if fatal(first):
                raise first
            raise RunsFailed(done, failed, root) from first
        return done

    def _connect(self, config: SweepConfig):
        """``(client, close)``: ``close`` is None when the client belongs to the caller."""
        from distributed import Client

        if isinstance(self.scheduler, Client):
            return self.scheduler, None
        if self.scheduler is None:
            cluster = local_cluster(config.device, n_workers=self.n_workers)
            client = Client(cluster)

            def close():
                client.close()
                cluster.close()

            return client, close
        if isinstance(self.scheduler, (str, Path)) and str(self.scheduler).endswith(".json"):
            client = Client(scheduler_file=str(Path(self.scheduler).expanduser()))  # dask scheduler --scheduler-file
        else:
            client = Client(self.scheduler)  # an address or a cluster object
        return client, client.close


def make_executor(name: str = "dask", scheduler=None, **options) -> Executor:
    """The executor called ``name``: ``"local"`` (serial, this process) or ``"dask"``
    (:class:`DaskExecutor`; ``scheduler`` an address ``tcp://HOST:PORT``, a scheduler file
    ``*.json``, a Client or a cluster, or None for a LocalCluster of this machine; ``options``: ``retries``,
    ``resources``, ``n_workers``)."""
    if name == "local":
        if scheduler is not None or options:
            raise ValueError("the local executor takes no scheduler or options: use --executor dask.")
        return local_executor
    if name == "dask":
        return DaskExecutor(scheduler, **options)
    raise ValueError(f"unknown executor {name!r}: choose local or dask.")
