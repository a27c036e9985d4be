"""The result store: one folder per run, written atomically, checked on read, merged on read.

Layout under ``root``::

    manifest.json                 the sha256 of every file below that a reader uses (needle_core.integrity)
    config.json                   the config that made the store (sweep.Sweep)
    .lock                         the store's lock (see Processes below)
    runs/<run>/spec.json          what the run is (role, arch, width, n_train, seed, t_w, kind)
    runs/<run>/resume.pt          latest resume state (model, optimiser, epoch, rows so far)
    runs/<run>/switch-<t>.pt      trunks only: the CNN at every switch time of the grid
    runs/<run>/final.pt           final weights (when the config asks for them)
    landscape/<point>.json        landscape records and their tables .parquet (needle_core.landscape)
    runs/<run>/metrics.parquet    tidy rows: run × epoch × metric (× layer)
    runs/<run>/provenance.json    config, seed, git commit, versions, machine, wall time, status,
                                  sha256 of spec.json and metrics.parquet (also in the manifest)
    runs/<run>/.lock              the run's lock

A run is finished exactly when its ``provenance.json`` exists (it is written last), so
merging is idempotent: a run re-executed after a crash or by a second worker rewrites the
same files and never duplicates rows.  Run folders from several machines can be merged by
copying their ``runs/`` folders side by side.

Integrity: readers compare every file with the sha256 the store's manifest records, and a
run's ``spec.json`` with its folder; a damaged, missing or unlisted file is one
:class:`~needle_core.integrity.StoreDamaged` line naming it and the fix (for a run's files:
delete the run's folder, the next sweep runs it again).  Checkpoints load with
``weights_only=True`` (tensors and plain containers, never code).  Stores written before the
manifest are refused until ``python -m needle_core upgrade`` has listed their files (it says
what it checked and what it vouches for); ``python -m needle_core verify`` checks a whole store.

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

from . import integrity
from .integrity import (ABSENT, MANIFEST, StoreDamaged, unlisted, fix_for, load_manifest, optional, read_checked,
                        relative, sha256_bytes, sidecar, sidecar_digests, upgrade_command)
from .io import atomic_write_bytes, atomic_write_files, json_bytes, leftovers, parquet_bytes, torch_bytes
from .lock import FileLock

SPEC_COLUMNS = ["run", "role", "arch", "width", "n_train", "seed", "switch_time", "kind", "lr_after"]
METRIC_COLUMNS = ["run", "epoch", "metric", "layer", "value"]
STATUSES = ("done", "diverged", "trunk_diverged")
RUN_FILES = ("spec.json", "metrics.parquet", "provenance.json")


class ResultStore:
    """Files of a sweep under ``root`` (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run

    def lock(self, run: str) -> FileLock:
        """The lock of ``run`` (not taken yet)."""
        return FileLock(self.run_dir(run) / ".lock")

    # -- the manifest ---------------------------------------------------------------------
    def has_manifest(self) -> bool:
        return (self.root / MANIFEST).is_file()

    def is_old(self) -> bool:
        """Whether the store holds files but no manifest (written before every file had a
        checksum): readers and writers refuse it until ``upgrade`` has run."""
        if self.has_manifest() or not self.root.is_dir():
            return False
        return (self.root / "config.json").exists() or any((self.root / "runs").rglob("provenance.json")) or \
            any((self.root / "landscape").glob("*.json"))

    def old_store_error(self) -> StoreDamaged:
        return StoreDamaged(self.root / MANIFEST, "missing: this store was written before every file had a checksum",
                            fix=f"run '{upgrade_command(self.root)}' once (it checks what earlier records allow and "
                                "says what it vouches for)")

    def writable(self) -> None:
        """Before writing into the store: a new store gets its (empty) manifest; an old one
        is refused until upgraded."""
        if self.has_manifest():
            return
        if self.is_old():
            raise self.old_store_error()
        integrity.create(self.root)

    def read(self, path: Path) -> bytes:
        """The bytes of a file of this store, checked against the manifest."""
        if not self.has_manifest() and self.is_old():
            raise self.old_store_error()
        return read_checked(path, self.root)

    def listed(self, path: Path) -> list[str] | None:
        """The digests the manifest accepts for ``path`` (None: not listed, or no manifest)."""
        if not self.has_manifest():
            return None
        return load_manifest(self.root).get(relative(self.root, path))

    def _vanished(self, path: Path) -> bool:
        """Whether ``path`` is gone although the manifest says it was written (and not in flight)."""
        accepted = self.listed(path)
        return accepted is not None and ABSENT not in accepted and not path.exists() and \
            not integrity.deleted_whole(self.root, relative(self.root, path))

    # -- per run --------------------------------------------------------------------------
    def is_finished(self, run: str) -> bool:
        return (self.run_dir(run) / "provenance.json").exists()

    def run_provenance(self, run: str) -> dict | None:
        """The provenance of a finished run (its status, config digest...), None if unfinished;
        :class:`StoreDamaged` for one that is damaged, or gone although it was written."""
        path = self.run_dir(run) / "provenance.json"
        if not path.exists():
            if self._vanished(path):
                raise StoreDamaged(path, "missing (the manifest records it: the run was finished)", self.run_dir(run))
            return None
        prov = _parse(self.root, relative(self.root, path), self.read(path))
        return prov

    def spec(self, run: str, provenance: dict | None = None) -> dict:
        """The ``spec.json`` of a run, which must describe the run of its folder."""
        path = self.run_dir(run) / "spec.json"
        return _parse(self.root, relative(self.root, path), self.read(path))

    def save_checkpoint(self, run: str, name: str, state: dict) -> Path:
        self.writable()
        return atomic_write_bytes(self.run_dir(run) / f"{name}.pt", torch_bytes(state))

    def load_checkpoint(self, run: str, name: str, map_location="cpu") -> dict | None:
        """A checkpoint, checked against the manifest and loaded as tensors only; None if absent."""
        path = self.run_dir(run) / f"{name}.pt"
        if not path.exists():
            return None
        data = self.read(path)
        try:
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise StoreDamaged(path, f"not a checkpoint of tensors ({_first_line(error)})", self.run_dir(run)) from None

    def metrics(self, run: str, provenance: dict | None = None) -> pd.DataFrame:
        """The tidy rows of a finished run (columns run, epoch, metric, layer, value)."""
        path = self.run_dir(run) / "metrics.parquet"
        return _parse(self.root, relative(self.root, path), self.read(path))

    def finish(self, run: str, spec: dict, rows: list[dict], provenance: dict) -> None:
        """Write the run's spec and metrics, then its provenance (the commit point), all three
        recorded in the manifest, then drop the resume state."""
        self.writable()
        d = self.run_dir(run)
        files = {"spec.json": json_bytes(spec),
                 "metrics.parquet": parquet_bytes(pd.DataFrame(rows, columns=METRIC_COLUMNS))}
        files["provenance.json"] = json_bytes(dict(provenance, checksums={n: sha256_bytes(b) for n, b in files.items()}))
        atomic_write_files({d / name: data for name, data in files.items()})
        if (d / "resume.pt").exists() or self.listed(d / "resume.pt") is not None:
            integrity.remove(d / "resume.pt")
        for path in (sidecar(d / "resume.pt"), *leftovers(d)):
            path.unlink(missing_ok=True)

    # -- the whole store ------------------------------------------------------------------
    def finished_runs(self) -> list[str]:
        base = self.root / "runs"
        return sorted(str(p.parent.relative_to(base)) for p in base.rglob("provenance.json")) if base.exists() else []

    def vanished_runs(self) -> list[str]:
        """Runs whose provenance the manifest records but which is gone (deleted: damage)."""
        if not self.has_manifest():
            return []
        out = []
        for name, accepted in load_manifest(self.root).items():
            parts = name.split("/")
            if parts[0] == "runs" and parts[-1] == "provenance.json" and ABSENT not in accepted \
                    and not (self.root / name).exists() and not integrity.deleted_whole(self.root, name):
                out.append("/".join(parts[1:-1]))
        return sorted(out)

    def provenance(self) -> pd.DataFrame:
        """One row per finished run: its spec, status, wall time, device, commit, config digest."""
        for run in self.vanished_runs():  # refused, never silently left out
            self.run_provenance(run)
        records = []
        for run in self.finished_runs():
            prov = self.run_provenance(run)
            records.append({**self.spec(run, prov),
                            **{k: prov.get(k) for k in ("status", "diverged_epoch", "wall_time_s", "device",
                                                        "precision", "deviation_version", "git_commit", "finished_at",
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

    def remove_leftovers(self) -> list[Path]:
        """Remove :meth:`leftovers` (the caller holds the store's lock exclusively)."""
        found = self.leftovers()
        for path in found:
            integrity.remove(path) if path.suffix == ".pt" and self.has_manifest() else path.unlink(missing_ok=True)
        return found

    def verify(self) -> dict:
        """Check every file of the store: each one the manifest lists against its sha256
        (and gone ones), each one on disk against the manifest (unexpected ones), every
        ``spec.json`` against its folder, every table and record for readability, every
        run's config digest against ``config.json``, and the runs the config expects.

        Returns lists: ``problems`` (one line each, naming the file and the fix; at most one
        per file), ``runs`` (finished, checked), ``checkpoints`` (checked),
        ``checkpoints_elsewhere`` (listed, not on this machine: not committed),
        ``in_flight`` (writes in progress, or killed: redone by the next sweep),
        ``unfinished`` (run folders in progress, or killed: resumed by the next sweep),
        ``leftovers`` (removed by the next sweep), ``not_trained`` (runs of the recorded
        config the store lacks), ``landscape`` (points measured), ``landscape_unmeasured``
        (a record without its rows: measured again by the landscape command)."""
        keys = ("problems", "runs", "checkpoints", "checkpoints_elsewhere", "in_flight", "unfinished", "leftovers",
                "not_trained", "landscape", "landscape_unmeasured", "files", "deleted")
        report = {k: [] for k in keys}
        damaged: dict[str, str] = {}

        def damage(error: StoreDamaged) -> None:
            damaged.setdefault(str(error.path), str(error))

        report["leftovers"] = [str(p) for p in self.leftovers()]
        skip = set(report["leftovers"])
        base = self.root / "runs"
        report["unfinished"] = sorted(str(p.relative_to(base)) for p in base.glob("*/*")
                                      if p.is_dir() and not (p / "provenance.json").exists()) if base.exists() else []
        if not self.has_manifest() and not self.is_old():
            return report  # a store started and stopped before its first file: nothing to check
        try:
            files = load_manifest(self.root, fresh=True)
        except StoreDamaged as error:
            damage(error)
            if not self.has_manifest():  # an old store: what its earlier records show
                for problem in upgrade(self.root, dry_run=True)["refused"]:
                    report["problems"].append(problem)
            report["problems"][:0] = list(damaged.values())
            return report
        for name, accepted in sorted(files.items()):
            path = self.root / name
            if not path.is_file():
                if ABSENT in accepted:
                    report["in_flight"].append(name)
                elif optional(name):
                    report["checkpoints_elsewhere"].append(name)
                elif integrity.deleted_whole(self.root, name):
                    report["deleted"].append(name)
                else:
                    damage(StoreDamaged(path, "missing (the manifest records it)", fix=fix_for(self.root, name)))
                continue
            if str(path) in skip:  # a leftover: never read, removed by the next sweep
                continue
            try:
                integrity.check_file(path, self.root)
                report["files"].append(name)
                if name.endswith(".pt"):
                    report["checkpoints"].append(name)
            except StoreDamaged as error:
                damage(error)
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or unlisted(path.name) or str(path) in skip:
                continue
            name = relative(self.root, path)
            if name not in files:
                what = ("an old checksum sidecar" if name.endswith(".pt.sha256") else
                        "not listed in the store's manifest (not written by needle_core, or the manifest lost it)")
                damage(StoreDamaged(path, what, fix=f"delete it, or vouch for it as it is with "
                                                    f"'{upgrade_command(self.root)}'"))
        # What the files say, for those whose bytes are what was written.
        record = None
        config = self.root / "config.json"
        if str(config) not in damaged and config.is_file():
            try:
                record = _parse(self.root, "config.json", config.read_bytes())
            except StoreDamaged as error:
                damage(error)
        elif not config.exists() and self.finished_runs() and str(config) not in damaged:
            damage(StoreDamaged(config, "missing (the store has finished runs)", fix=fix_for(self.root, "config.json")))
        for run in self.finished_runs():
            paths = [self.run_dir(run) / n for n in RUN_FILES]
            if any(str(p) in damaged for p in paths):
                continue
            try:
                parsed = {p.name: _parse(self.root, relative(self.root, p), p.read_bytes()) for p in paths}
                prov = parsed["provenance.json"]
                if record is not None and prov.get("config_digest") != record.get("digest"):
                    raise StoreDamaged(paths[2], f"config digest {prov.get('config_digest')} is not the store's "
                                                 f"{record.get('digest')} (config.json)", self.run_dir(run))
                report["runs"].append(run)
            except FileNotFoundError as error:
                damage(StoreDamaged(Path(error.filename), "missing", self.run_dir(run)))
            except StoreDamaged as error:
                damage(error)
        land = self.root / "landscape"
        for path in sorted(land.glob("*.json")) if land.is_dir() else []:
            table = path.with_suffix(".parquet")
            try:
                if str(path) not in damaged:
                    rec = _parse(self.root, relative(self.root, path), path.read_bytes())
                    if rec.get("status") == "done" and not table.exists() and str(table) not in damaged:
                        report["landscape_unmeasured"].append(relative(self.root, path))
                if table.exists() and str(table) not in damaged:
                    _parse(self.root, relative(self.root, table), table.read_bytes())
                    report["landscape"].append(relative(self.root, table))
            except StoreDamaged as error:
                damage(error)
        for table in sorted(land.glob("*.parquet")) if land.is_dir() else []:
            if not table.with_suffix(".json").exists() and str(table.with_suffix(".json")) not in damaged:
                damage(StoreDamaged(table.with_suffix(".json"), "missing (the record of a measured table)",
                                    fix=fix_for(self.root, relative(self.root, table))))
        if record is not None:
            report["not_trained"] = expected_missing(self, record)
        report["problems"] = list(damaged.values())
        return report

def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _parse(root: Path, name: str, data: bytes):
    """What the file ``name`` of the store at ``root`` holds, parsed (a dict, a frame, a
    state dict), or :class:`StoreDamaged` saying why it is not a file of its kind."""
    path = Path(root) / name
    parts = name.split("/")
    run = "/".join(parts[1:-1]) if parts[0] == "runs" and len(parts) >= 3 else None
    fix = fix_for(root, name)

    def bad(problem: str) -> StoreDamaged:
        return StoreDamaged(path, problem, fix=fix)

    if name.endswith(".json"):
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise bad(f"not valid JSON ({_first_line(error)})") from None
        if not isinstance(value, dict):
            raise bad(f"holds a JSON {type(value).__name__}, not an object")
        if name == "config.json" and not (isinstance(value.get("config"), dict) and isinstance(value.get("digest"), str)):
            raise bad("not a store's config record (no config or digest)")
        if run is not None and parts[-1] == "spec.json" and value.get("run") != run:
            raise bad(f"describes run {value.get('run')}, not {run} (swapped?)")
        if run is not None and parts[-1] == "provenance.json":
            if value.get("run", run) != run:
                raise bad(f"is the provenance of run {value.get('run')}, not {run} (swapped?)")
            if value.get("status") not in STATUSES:
                raise bad(f"status {value.get('status')!r} is none of {', '.join(STATUSES)}")
        if parts[0] == "landscape" and "status" not in value:
            raise bad("not a landscape record (no status)")
        return value
    if name.endswith(".parquet"):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises its own types for damaged files
            raise bad(f"not readable as Parquet ({_first_line(error)})") from None
        if run is not None and (list(frame.columns) != METRIC_COLUMNS or (frame["run"] != run).any()):
            raise bad(f"does not hold the rows of {run} (columns {list(frame.columns)}, "
                      f"runs {sorted(set(frame.get('run', [])))[:3]})")
        return frame
    if name.endswith(".pt"):
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:
            raise bad(f"not a checkpoint of tensors ({_first_line(error)})") from None
    return data


def expected_missing(store: ResultStore, record: dict) -> list[str]:
    """The runs of the config ``record`` (a store's ``config.json``) that the store lacks."""
    from .config import SweepConfig
    from .sweep import plan

    try:
        config = SweepConfig(**record["config"])
        runs = [spec.run for spec in plan(config)]
    except Exception:  # a record of another version: nothing to expect
        return []
    return [run for run in runs if not store.is_finished(run)]


def _kind(name: str) -> str | None:
    """The kind of a store file a reader uses, or None for a file that is not one."""
    parts = name.split("/")
    if name == "config.json":
        return "config"
    if parts[0] == "runs" and len(parts) >= 3:
        if parts[-1] in RUN_FILES:
            return parts[-1]
        if parts[-1].endswith(".pt"):
            return "checkpoint"
    if parts[0] == "landscape" and len(parts) == 2 and parts[-1].endswith((".json", ".parquet")):
        return "landscape " + parts[-1].rsplit(".", 1)[1]
    if parts[:2] == ["landscape", "curves"] and len(parts) == 4 and parts[-1].endswith((".json", ".parquet")):
        return "curve " + parts[-1].rsplit(".", 1)[1]  # a curve task's record, rows or trace
    return None


def upgrade(root: str | Path, rebuild: bool = False, dry_run: bool = False) -> dict:
    """Give a store written before the manifest its manifest (``python -m needle_core
    upgrade``), or list in an existing one the files it lacks.

    Each file of a known kind not yet listed is checked as far as earlier records allow,
    then listed: ``spec.json`` and ``metrics.parquet`` against the checksums of their
    run's provenance, a checkpoint against its old sidecar (``.pt.sha256``, then removed);
    a file with no earlier record (``provenance.json``, ``config.json``, landscape records
    and tables, checkpoints without a sidecar) is only parsed, and listed as it is now: the
    caller vouches for it.  A file that fails its check is refused (left unlisted, named
    with its fix); files already listed are checked and never re-listed; files of no known
    kind stay unexpected.  ``rebuild``: start from an empty manifest (one that is damaged).
    Returns lists ``checked``, ``vouched``, ``refused`` (problem lines), ``unexpected``,
    ``kept`` (listed before), ``sidecars`` (removed)."""
    root = Path(root)
    out = {k: [] for k in ("checked", "vouched", "refused", "unexpected", "kept", "sidecars")}
    files: dict[str, list[str]] = {}
    if (root / MANIFEST).exists() and not rebuild:
        files = dict(load_manifest(root, fresh=True))  # a damaged one raises: --rebuild
    store = ResultStore(root)
    skip = {str(p) for p in store.leftovers()}
    adopted: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or unlisted(path.name) or str(path) in skip or \
                (path.name.startswith(".") and path.name.endswith(".tmp")):
            continue
        name = relative(root, path)
        if name.endswith(".pt.sha256"):
            continue  # read with its checkpoint
        kind = _kind(name)
        if name in files:
            try:
                integrity.check_file(path, root)
                out["kept"].append(name)
            except StoreDamaged as error:
                out["refused"].append(str(error))
            continue
        if kind is None:
            out["unexpected"].append(name)
            continue
        data = path.read_bytes()
        digest = sha256_bytes(data)
        recorded, source = None, None
        if kind in ("spec.json", "metrics.parquet"):
            try:
                prov = json.loads((path.parent / "provenance.json").read_bytes())
                recorded, source = [prov["checksums"][path.name]], "its run's provenance"
            except (OSError, ValueError, KeyError, TypeError):
                pass
        elif kind == "checkpoint":
            recorded, source = sidecar_digests(path), f"its sidecar {sidecar(path).name}"
        try:
            if recorded is not None and digest not in recorded:
                shown = recorded[0][:12] + "..." if recorded else "nothing (the sidecar is empty or unreadable)"
                raise StoreDamaged(path, f"sha256 {digest[:12]}... is not the {shown} recorded in {source} "
                                         "(damaged or replaced)", fix=fix_for(root, name))
            _parse(root, name, data)
        except StoreDamaged as error:
            out["refused"].append(str(error))
            continue
        adopted[name] = [digest]
        out["checked" if recorded is not None else "vouched"].append(name)
    dropped = [name for name in files if not (root / name).exists() and integrity.deleted_whole(root, name)]
    out["dropped"] = dropped
    if not dry_run:
        with FileLock(root / ".manifest.lock") as lock:
            lock.acquire()
            integrity.write_manifest(root, {**{k: v for k, v in files.items() if k not in dropped}, **adopted})
        for path in sorted(root.rglob("*.pt.sha256")):
            if relative(root, path.with_name(path.name[:-len(".sha256")])) in {**files, **adopted} or \
                    not path.with_name(path.name[:-len(".sha256")]).exists():
                path.unlink()
                out["sidecars"].append(relative(root, path))
    return out


def rebuild_config(root: str | Path) -> dict:
    """``config.json`` rebuilt from the provenance of the store's finished runs (``python -m
    needle_core rebuild-config``): every run must name one config digest; the config is the
    latest run's, its grid (archs, widths, n_trains, seeds, kinds, baselines) the union of
    the runs'.  The data set's identity is computed where the data set is here (and must
    give the recorded digest), else kept from the damaged record when readable, else
    written as unknown (a sweep with the data set rewrites it).  Returns the record."""
    from .config import SweepConfig
    from .data import DatasetNotFound

    root = Path(root)
    store = ResultStore(root)
    provs = {}
    for run in store.finished_runs():
        provs[run] = store.run_provenance(run)  # checked: a damaged one is named
    if not provs:
        raise ValueError(f"{root} has no finished run whose provenance could rebuild config.json: delete "
                         f"{root / 'config.json'}; the next sweep writes it.")
    digests = {}
    for run, prov in provs.items():
        digests.setdefault(prov.get("config_digest"), []).append(run)
    if len(digests) != 1:
        raise ValueError(f"the runs of {root} name {len(digests)} config digests ("
                         + "; ".join(f"{d}: {len(r)} runs, e.g. {r[0]}" for d, r in digests.items())
                         + "): delete the runs of the config you do not keep, then run rebuild-config again.")
    digest = next(iter(digests))
    latest = max(provs.values(), key=lambda p: str(p.get("finished_at")))
    config = dict(latest["config"])
    for key in ("archs", "widths", "n_trains", "seeds", "kinds", "baselines"):
        values = []
        for prov in provs.values():
            values += [v for v in prov["config"].get(key, []) if v not in values]
        config[key] = values
    identity = "unknown (config.json rebuilt without the data set; a sweep with it rewrites this)"
    try:
        made = SweepConfig(**config)
        if made.digest() != digest:
            raise ValueError(f"the data set {config['dataset']!r} here gives config digest {made.digest()}, not the "
                             f"runs' {digest}: it is not the data set that made {root}.")
        from .data import identity as identity_of

        identity = identity_of(config["dataset"])
    except DatasetNotFound:
        try:
            old = json.loads((root / "config.json").read_bytes())
            if old.get("digest") == digest and isinstance(old.get("dataset_identity"), str):
                identity = old["dataset_identity"]
        except (OSError, ValueError, AttributeError):
            pass
    record = dict(config=config, digest=digest, dataset_identity=identity)
    store.writable()
    atomic_write_bytes(root / "config.json", json_bytes(record))
    return record


def landscape_files(root: str | Path, suffix: str) -> list[Path]:
    """The landscape records (``".json"``) or tables (``".parquet"``) of the store at ``root``,
    sorted; :class:`StoreDamaged` for one the manifest records that is gone (a table deleted
    on its own: its rows would silently be missing)."""
    store = ResultStore(root)
    folder = store.root / "landscape"
    files = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
    if store.has_manifest():
        for name, accepted in load_manifest(store.root).items():
            path = store.root / name
            if name.startswith("landscape/") and name.endswith(suffix) and not path.exists() \
                    and ABSENT not in accepted and not integrity.deleted_whole(store.root, name):
                raise StoreDamaged(path, "missing (the manifest records it)", fix=fix_for(store.root, name))
    elif files and store.is_old():
        raise store.old_store_error()
    return files


def read_landscape_table(path: str | Path) -> pd.DataFrame:
    """A landscape table of a store, checked against its manifest."""
    path = Path(path)
    root = path.parent.parent
    return _parse(root, relative(root, path), ResultStore(root).read(path))


def read_landscape_record(path: str | Path) -> dict:
    """A landscape record of a store, checked against its manifest."""
    return read_landscape_table(path)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        # Result stores (runs/) change as sweeps write them (their manifests), and the executed
        # pages (book/*.ipynb) as a re-render writes them one after another: neither is code.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)runs", ":(top,exclude,glob)book/*.ipynb"], capture_output=True,
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
