"""The result store: one folder per run, written atomically, checked on read, merged on read.

Layout under ``root``::

    config.json                   the config that made the store (sweep.Sweep)
    .lock                         the store's lock (see Processes below)
    runs/<run>/spec.json          what the run is (role, arch, width, n_train, seed, t_w, kind)
    runs/<run>/resume.pt          latest resume state (model, optimiser, epoch, rows so far)
    runs/<run>/switch-<t>.pt      trunks only: the CNN at every switch time of the grid
    runs/<run>/final.pt           final weights (when the config asks for them)
    runs/<run>/<name>.pt.sha256   the sha256 of each checkpoint (needle_core.integrity)
    runs/<run>/metrics.parquet    tidy rows: run × epoch × metric (× layer)
    runs/<run>/provenance.json    config, seed, git commit, versions, machine, wall time, status,
                                  sha256 of spec.json and metrics.parquet
    runs/<run>/.lock              the run's lock

A run is finished exactly when its ``provenance.json`` exists (it is written last), so
merging is idempotent: a run re-executed after a crash or by a second worker rewrites the
same files and never duplicates rows.  Run folders from several machines can be merged by
copying their ``runs/`` folders side by side.

Integrity: readers compare every file with its recorded sha256 and a run's ``spec.json``
with its folder; a damaged file is one :class:`~needle_core.integrity.StoreDamaged` line
naming it and the fix (delete the run's folder: the next sweep runs it again).  Checkpoints
load with ``weights_only=True`` (tensors and plain containers, never code).  Runs written
before checksums existed are read unchecked; ``python -m needle_core verify`` says which.

Processes (``fcntl.flock``, released by the kernel when a process dies, kill -9 included):

* a sweep with runs to do holds the store's ``.lock`` for its whole duration, shared, so
  that sweeps of one config work side by side; it checks the store's config under it and
  refuses another config before training anything.  A sweep that finds no other holder
  takes it exclusively first: then no writer can be alive, and it removes what killed ones
  left (:meth:`ResultStore.leftovers`);
* a run is trained under its folder's ``.lock``, held exclusively: a second process (a
  second sweep, a Dask worker) skips a run that another trains, or waits for it when it
  needs it (a branch needs its trunk), then finds it finished.  Recreating a finished
  trunk's switch checkpoints also happens under the trunk's lock.
"""
from __future__ import annotations

import functools
import io
import json
import os
import pickle
import platform
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import torch

from .integrity import StoreDamaged, check, sha256_bytes, sidecar, sidecar_digests, write_checked
from .io import atomic_write_bytes, atomic_write_json, json_bytes, leftovers, parquet_bytes, torch_bytes
from .lock import FileLock

SPEC_COLUMNS = ["run", "role", "arch", "width", "n_train", "seed", "switch_time", "kind", "lr_after"]
METRIC_COLUMNS = ["run", "epoch", "metric", "layer", "value"]


class ResultStore:
    """Files of a sweep under ``root`` (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run

    def lock(self, run: str) -> FileLock:
        """The lock of ``run`` (not taken yet)."""
        return FileLock(self.run_dir(run) / ".lock")

    # -- per run --------------------------------------------------------------------------
    def is_finished(self, run: str) -> bool:
        return (self.run_dir(run) / "provenance.json").exists()

    def run_provenance(self, run: str) -> dict | None:
        """The provenance of a finished run (its status, config digest...), None if unfinished."""
        path = self.run_dir(run) / "provenance.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_bytes())
        except ValueError as error:
            raise StoreDamaged(path, f"not valid JSON ({error})", self.run_dir(run)) from None

    def _read(self, run: str, name: str, provenance: dict | None) -> bytes:
        """The bytes of a run's ``name``, checked against the sha256 its provenance recorded."""
        path = self.run_dir(run) / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreDamaged(path, "missing", self.run_dir(run)) from None
        recorded = (provenance or {}).get("checksums", {}).get(name)
        if recorded is not None:
            check(path, [recorded], self.run_dir(run), data)
        return data

    def spec(self, run: str, provenance: dict | None = None) -> dict:
        """The ``spec.json`` of a run, which must describe the run of its folder."""
        path = self.run_dir(run) / "spec.json"
        try:
            spec = json.loads(self._read(run, "spec.json", provenance or self.run_provenance(run)))
        except ValueError as error:
            raise StoreDamaged(path, f"not valid JSON ({error})", self.run_dir(run)) from None
        if not isinstance(spec, dict) or spec.get("run") != run:
            described = spec.get("run") if isinstance(spec, dict) else repr(spec)
            raise StoreDamaged(path, f"describes run {described}, not {run} (swapped?)", self.run_dir(run))
        return spec

    def save_checkpoint(self, run: str, name: str, state: dict) -> Path:
        return write_checked(self.run_dir(run) / f"{name}.pt", torch_bytes(state))

    def load_checkpoint(self, run: str, name: str, map_location="cpu") -> dict | None:
        """A checkpoint, checked against its sidecar and loaded as tensors only; None if absent."""
        path = self.run_dir(run) / f"{name}.pt"
        if not path.exists():
            return None
        digests = sidecar_digests(path)
        if digests is not None:
            check(path, digests, self.run_dir(run))
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise StoreDamaged(path, f"not a checkpoint of tensors ({reason})", self.run_dir(run)) from None

    def metrics(self, run: str, provenance: dict | None = None) -> pd.DataFrame:
        """The tidy rows of a finished run (columns run, epoch, metric, layer, value)."""
        path = self.run_dir(run) / "metrics.parquet"
        data = self._read(run, "metrics.parquet", provenance or self.run_provenance(run))
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except (OSError, ValueError) as error:
            raise StoreDamaged(path, f"not readable as Parquet ({error})", self.run_dir(run)) from None
        if list(frame.columns) != METRIC_COLUMNS or (frame["run"] != run).any():
            raise StoreDamaged(path, f"does not hold the rows of {run} (columns {list(frame.columns)}, "
                                     f"runs {sorted(set(frame.get('run', [])))[:3]})", self.run_dir(run))
        return frame

    def finish(self, run: str, spec: dict, rows: list[dict], provenance: dict) -> None:
        """Write the run's spec and metrics, then its provenance with their checksums (the
        commit point), then drop the resume state."""
        d = self.run_dir(run)
        files = {"spec.json": json_bytes(spec),
                 "metrics.parquet": parquet_bytes(pd.DataFrame(rows, columns=METRIC_COLUMNS))}
        for name, data in files.items():
            atomic_write_bytes(d / name, data)
        atomic_write_json(d / "provenance.json",
                          dict(provenance, checksums={name: sha256_bytes(data) for name, data in files.items()}))
        for path in (d / "resume.pt", sidecar(d / "resume.pt"), *leftovers(d)):
            path.unlink(missing_ok=True)

    # -- the whole store ------------------------------------------------------------------
    def finished_runs(self) -> list[str]:
        base = self.root / "runs"
        return sorted(str(p.parent.relative_to(base)) for p in base.rglob("provenance.json")) if base.exists() else []

    def provenance(self) -> pd.DataFrame:
        """One row per finished run: its spec, status, wall time, device, commit, config digest."""
        records = []
        for run in self.finished_runs():
            prov = self.run_provenance(run)
            records.append({**self.spec(run, prov),
                            **{k: prov.get(k) for k in ("status", "diverged_epoch", "wall_time_s", "device",
                                                        "precision", "git_commit", "finished_at",
                                                        "config_digest")}})
        return pd.DataFrame(records)

    def results(self) -> pd.DataFrame:
        """All finished runs' tidy rows, each joined with its run's spec columns.

        Columns: run, role, arch, width, n_train, seed, switch_time, kind, lr_after, status,
        epoch, metric, layer, value.  ``layer`` is "" for loss/accuracy rows and a layer
        name or "network" for deviation rows.
        """
        runs = self.provenance()
        if runs.empty:
            return pd.DataFrame(columns=SPEC_COLUMNS + ["status"] + METRIC_COLUMNS[1:])
        frames = [self.metrics(r) for r in runs["run"]]
        # A branch of a diverged trunk has no rows; concat of empty frames warns (and casts).
        rows = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        return rows.merge(runs[SPEC_COLUMNS + ["status"]], on="run", how="left")[
            SPEC_COLUMNS + ["status"] + METRIC_COLUMNS[1:]]

    def leftovers(self) -> list[Path]:
        """What killed processes left: temporary files of unfinished writes, and the resume
        states of runs killed after they finished (both never read).  Remove them only
        while no other sweep can be writing (holding the store's lock); files of a run whose
        own lock is held (a worker of a sweep that was killed, still finishing its task) are
        left out."""
        finished = [self.run_dir(run) / "resume.pt" for run in self.finished_runs()]
        found = leftovers(self.root) + [p for r in finished for p in (r, sidecar(r)) if p.exists()]
        base = self.root / "runs"
        return [p for p in found if not (p.is_relative_to(base) and FileLock(p.parent / ".lock").held())]

    def verify(self) -> dict:
        """Check every file of the store against its checksum, every ``spec.json`` against its
        folder, every table for readability and every run's config digest against
        ``config.json``.  Returns lists: ``problems`` (one line each, with the fix), and
        ``runs``, ``unchecked_runs`` (finished before checksums existed), ``checkpoints``,
        ``unchecked_checkpoints``, ``unfinished`` (in progress, or killed: resumed by the
        next sweep) and ``leftovers``."""
        report = {k: [] for k in ("problems", "runs", "unchecked_runs", "checkpoints", "unchecked_checkpoints",
                                  "unfinished", "leftovers")}
        record = None
        if (self.root / "config.json").exists():
            try:
                record = json.loads((self.root / "config.json").read_text())
            except ValueError as error:
                report["problems"].append(f"{self.root / 'config.json'}: not valid JSON ({error}): "
                                          "the next sweep of this store rewrites it.")
        for run in self.finished_runs():
            prov = None
            try:
                prov = self.run_provenance(run)
                self.spec(run, prov)
                self.metrics(run, prov)
                if record is not None and prov.get("config_digest") != record.get("digest"):
                    raise StoreDamaged(self.run_dir(run) / "provenance.json",
                                       f"config digest {prov.get('config_digest')} is not the store's "
                                       f"{record.get('digest')} (config.json)", self.run_dir(run))
            except StoreDamaged as damage:
                report["problems"].append(str(damage))
            report["runs" if "checksums" in (prov or {}) else "unchecked_runs"].append(run)
        report["leftovers"] = [str(p) for p in self.leftovers()]
        base = self.root / "runs"
        for path in sorted(base.rglob("*.pt")) if base.exists() else []:
            if str(path) in report["leftovers"]:
                continue
            run = str(path.parent.relative_to(base))
            digests = sidecar_digests(path)
            if digests is None:
                report["unchecked_checkpoints"].append(str(path))
                continue
            try:
                check(path, digests, self.run_dir(run))
            except StoreDamaged as damage:
                report["problems"].append(str(damage))
            report["checkpoints"].append(str(path))
        report["unfinished"] = sorted(str(p.relative_to(base)) for p in base.glob("*/*")
                                      if p.is_dir() and not (p / "provenance.json").exists()) if base.exists() else []
        return report


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """What CPU results depend on besides the code: the processor, the instruction set torch
    dispatches to and the BLAS it was built with (a resumed or recreated run on another
    machine can differ in the last bits)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    show = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", show)
    version = re.search(r"(?:Math Kernel Library|OpenBLAS|BLIS) Version ([\w.]+)", show)
    return dict(cpu=model.group(1).strip() if model else platform.processor() or platform.machine(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                blas=" ".join(m.group(1) for m in (blas, version) if m) or None)


def gpu_driver() -> str | None:
    """The NVIDIA kernel driver's version (Linux), None where it cannot be read."""
    try:
        found = re.search(r"Kernel Module\s+([\d.]+)", Path("/proc/driver/nvidia/version").read_text())
    except OSError:
        return None
    return found.group(1) if found else None


def environment(device: torch.device) -> dict:
    """Provenance of the machine: versions, processor, instruction set, BLAS, threads, GPU."""
    import numpy
    import needle_core

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    gpu = dict(cuda=torch.version.cuda, gpu_driver=gpu_driver()) if device.type == "cuda" else {}
    return dict(git_commit=git_commit(), python=platform.python_version(), torch=torch.__version__,
                numpy=numpy.__version__, needle_core=needle_core.__version__, device=f"{device.type}: {name}",
                **machine(), **gpu, threads=torch.get_num_threads(), host=platform.node(), pid=os.getpid(),
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
