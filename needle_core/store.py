"""The result store: one folder per run, written atomically, merged on read.

Layout under ``root``::

    runs/<run>/spec.json          what the run is (role, arch, width, n_train, seed, t_w, kind)
    runs/<run>/resume.pt          latest resume state (model, optimiser, epoch, rows so far)
    runs/<run>/switch-<t>.pt      trunks only: the CNN at every switch time of the grid
    runs/<run>/final.pt           final weights (when the config asks for them)
    runs/<run>/metrics.parquet    tidy rows: run × epoch × metric (× layer)
    runs/<run>/provenance.json    config, seed, git commit, versions, device, wall time, status

A run is finished exactly when its ``provenance.json`` exists (it is written last), so
merging is idempotent: a run re-executed after a crash or by a second worker rewrites the
same files and never duplicates rows.  Run folders from several machines can be merged by
copying their ``runs/`` folders side by side.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd
import torch

from .io import atomic_torch_save, atomic_write_json, atomic_write_parquet

SPEC_COLUMNS = ["run", "role", "arch", "width", "n_train", "seed", "switch_time", "kind", "lr_after"]


class ResultStore:
    """Files of a sweep under ``root`` (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run

    # -- per run --------------------------------------------------------------------------
    def is_finished(self, run: str) -> bool:
        return (self.run_dir(run) / "provenance.json").exists()

    def run_provenance(self, run: str) -> dict | None:
        """The provenance of a finished run (its status, config digest...), None if unfinished."""
        path = self.run_dir(run) / "provenance.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save_checkpoint(self, run: str, name: str, state: dict) -> Path:
        return atomic_torch_save(self.run_dir(run) / f"{name}.pt", state)

    def load_checkpoint(self, run: str, name: str, map_location="cpu") -> dict | None:
        path = self.run_dir(run) / f"{name}.pt"
        if not path.exists():
            return None
        return torch.load(path, map_location=map_location, weights_only=True)

    def metrics(self, run: str) -> pd.DataFrame:
        """The tidy rows of a finished run (columns run, epoch, metric, layer, value)."""
        return pd.read_parquet(self.run_dir(run) / "metrics.parquet")

    def finish(self, run: str, spec: dict, rows: list[dict], provenance: dict) -> None:
        """Write the run's metrics, then its provenance (the commit point), then drop the
        resume state."""
        d = self.run_dir(run)
        atomic_write_json(d / "spec.json", spec)
        atomic_write_parquet(d / "metrics.parquet", pd.DataFrame(rows, columns=["run", "epoch", "metric", "layer", "value"]))
        atomic_write_json(d / "provenance.json", provenance)
        (d / "resume.pt").unlink(missing_ok=True)
        for stray in d.glob(".*.tmp"):  # half-written files of a killed writer: never read, now dropped
            stray.unlink(missing_ok=True)

    # -- the whole store ------------------------------------------------------------------
    def finished_runs(self) -> list[str]:
        base = self.root / "runs"
        return sorted(str(p.parent.relative_to(base)) for p in base.rglob("provenance.json")) if base.exists() else []

    def provenance(self) -> pd.DataFrame:
        """One row per finished run: its spec, status, wall time, device, commit, config digest."""
        records = []
        for run in self.finished_runs():
            prov = self.run_provenance(run)
            records.append({**json.loads((self.run_dir(run) / "spec.json").read_text()),
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
            return pd.DataFrame(columns=SPEC_COLUMNS + ["status", "epoch", "metric", "layer", "value"])
        frames = [self.metrics(r) for r in runs["run"]]
        # A branch of a diverged trunk has no rows; concat of empty frames warns (and casts).
        rows = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        return rows.merge(runs[SPEC_COLUMNS + ["status"]], on="run", how="left")[
            SPEC_COLUMNS + ["status", "epoch", "metric", "layer", "value"]]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    """Provenance of the machine: versions, device name, threads."""
    import numpy
    import needle_core

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return dict(git_commit=git_commit(), python=platform.python_version(), torch=torch.__version__,
                numpy=numpy.__version__, needle_core=needle_core.__version__, device=f"{device.type}: {name}",
                threads=torch.get_num_threads(), host=platform.node(), pid=os.getpid(),
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
