"""The loss landscape between a sweep's networks (claim 6), measured once and stored as tidy
rows beside the runs, so that the book re-plots it without the checkpoints.

For one trunk seed and switch time ``t_w`` three points of one FC space are compared:
``CNN@t_w`` (the trunk at the switch, embedded: where the eFCN starts), ``eFCN`` (the branch
at the end of its budget) and ``FCN`` (the baseline trained from scratch). Two paths,
``cnn-efcn`` and ``efcn-fcn``, each followed by the methods of :mod:`needle_core.interpolate`
(``linear`` and ``string`` by default). Results go to ``<root>/landscape/<group>-t<t_w>.parquet``
(one file per seed and switch time, written atomically: a killed measurement resumes at the
next missing file), each with its provenance ``<group>-t<t_w>.json`` (the config's digest,
the measurement's settings, git commit, versions, machine, wall time). Where the eFCN
(or its trunk) diverged there is no basin to measure: the record gives that status and no
rows are written.

Measuring needs the final and switch checkpoints, which only the machine that trained the
sweep has (checkpoints are not committed); reading (:func:`scans`, :func:`results`,
:func:`records`) needs nothing but the stored files, and :func:`missing` and :func:`command`
say what is left to measure and how::

    python -m needle_core landscape --profile cpu --set dataset=folder:data/cifar10-jpeg.tar.gz --switch-times 2,8,16

That is the 20-epoch edition's measurement (claim 6 by the string path, no control).  The
converged edition measures claim 6 by **trained curves with controls** (issue 18; the rule:
book/preregistration.md, "Claim 6 by trained curves (converged edition)"), as *tasks of the
sweep's graph* (:func:`curve_tasks`, :class:`CurveSpec`), opted into per profile by
``landscape_switch_times``: each task joins two finished runs (eFCN → FCN of one seed; the
controls FCN ↔ FCN, eFCN ↔ eFCN and CNN ↔ CNN of two seeds) and runs as soon as they are
finished, where they trained, so it never needs weights from another machine.  On a fresh
clone (final weights are never committed) a sweep re-trains a task's endpoints only when
the task itself is missing (:func:`_final_state`).  Each task stores, under
``<root>/landscape/curves/<arch>-w<width>-n<n_train>/``, its rows along four paths (linear,
linear after weight matching, string, trained Bézier curve), the string's and the curve's
convergence traces and its record (written last: the task is done exactly when it exists).
Readers: :func:`curve_results` (barriers), :func:`curve_traces`, :func:`curve_records`;
the decision: :func:`curve_claim`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .analysis.stats import interval
from .config import SweepConfig
from .embedding import embed
from .interpolate import barrier, scan, string
from .io import atomic_write_bytes, atomic_write_json, parquet_bytes
from .models import cnn, fcn
from .run import RunSpec, resolve_device
from .store import ResultStore, environment, landscape_files, read_landscape_record, read_landscape_table
from .sweep import Sweep

class WeightsMissing(ValueError):
    """An endpoint's weights are not here: its run diverged or is unfinished, or its
    checkpoints are not on this machine (a clone): what a page re-plotting a store expects."""


#: The two paths: (name, first endpoint, second endpoint).
PATHS = (("cnn-efcn", "CNN@t_w", "eFCN"), ("efcn-fcn", "eFCN", "FCN"))


def _network(spec: RunSpec, state: dict, shape, classes: int, device, kind: str) -> torch.nn.Module:
    """A network of the sweep's architecture with ``state`` loaded: a CNN checkpoint embedded
    (``kind="cnn"``), an eFCN's or an FCN's own weights (``"efcn"``, ``"fcn"``)."""
    model = cnn(spec.arch, ch=spec.width, num_classes=classes)
    if kind == "cnn":
        model.load_state_dict(state)
        return embed(model, shape, "fc").to(device).eval()
    model = embed(model, shape, "fc") if kind == "efcn" else fcn(model, shape, "fc")
    model.load_state_dict(state)
    return model.to(device).eval()


def _weights(store: ResultStore, base: dict, t: int, device) -> dict:
    """``{"CNN@t_w", "eFCN", "FCN"}`` state dicts of one seed and switch time, or
    :class:`WeightsMissing` naming the run whose weights are missing (diverged, or checkpoints not on this machine).
    Read before the data set is loaded: a clone without checkpoints learns it at once, and
    never downloads a data set it could not use."""
    def weights(spec: RunSpec, name: str) -> dict:
        prov = store.run_provenance(spec.run)
        if prov is None or prov["status"] != "done":
            raise WeightsMissing(f"{spec.run} is not a finished run ({prov and prov['status']}): a diverged or missing "
                                 "run has no weights to interpolate.")
        state = store.load_checkpoint(spec.run, name, map_location=device)
        if state is None:
            raise WeightsMissing(f"{store.run_dir(spec.run)}/{name}.pt is not here: the landscape is measured where the "
                                 "sweep trained (checkpoints are not committed); re-run the sweep there first.")
        return state["model"]

    trunk, branch, scratch = RunSpec("cnn", **base), RunSpec("efcn", **base, switch_time=t), RunSpec("fcn", **base)
    return {"CNN@t_w": weights(trunk, f"switch-{t}"), "eFCN": weights(branch, "final"),
            "FCN": weights(scratch, "final")}


def _endpoints(base: dict, states: dict, data, device) -> dict:
    """The networks of :func:`_weights`' state dicts: the CNN checkpoint embedded, the eFCN and
    the FCN with their own weights."""
    shape, classes = data.input_shape, data.num_classes
    spec = RunSpec("cnn", **base)
    return {"CNN@t_w": _network(spec, states["CNN@t_w"], shape, classes, device, "cnn"),
            "eFCN": _network(spec, states["eFCN"], shape, classes, device, "efcn"),
            "FCN": _network(spec, states["FCN"], shape, classes, device, "fcn")}


def _grid(config: SweepConfig, switch_times, seeds=None):
    """``(base, t)`` of every point to measure, in :func:`measure`'s order: ``base`` the
    group's spec (arch, width, n_train, seed), ``t`` the switch time."""
    for seed in seeds if seeds is not None else config.seeds:
        for arch in config.archs:
            for width in config.widths:
                for n_train in config.n_trains:
                    for t in switch_times:
                        yield dict(arch=arch, width=width, n_train=n_train, seed=seed), t


def _path(root, base: dict, t: int) -> Path:
    return Path(root) / "landscape" / f"{RunSpec('cnn', **base).group}-t{t}.parquet"


def _stored(path: Path) -> bool:
    """Whether the point of ``path`` needs no measuring: its rows are stored, or its record
    says there is nothing to measure (a diverged eFCN)."""
    record = path.with_suffix(".json")
    return path.exists() or (record.exists() and read_landscape_record(record)["status"] != "done")


def missing(config: SweepConfig, root, switch_times: list[int], seeds: list[int] | None = None) -> list[dict]:
    """The points :func:`measure` would measure (``base`` and ``switch_time`` of each, as
    dicts), in its order: neither their rows nor a record of a diverged eFCN are stored."""
    return [dict(base, switch_time=t) for base, t in _grid(config, switch_times, seeds)
            if not _stored(_path(root, base, t))]


def command(config: SweepConfig, root, switch_times: list[int], seeds: list[int] | None = None) -> str:
    """The shell command that measures these points of the store at ``root`` (where the sweep
    trained: it needs the checkpoints)."""
    import shlex

    from .config import overrides_of
    from .sweep import default_root

    def yaml(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    words = ["python", "-m", "needle_core", "landscape", "--profile", config.name]
    for key, value in overrides_of(config).items():
        words += ["--set", f"{key}={yaml(value)}"]
    if Path(root) != default_root(config.name):
        words += ["--out", str(root)]
    words += ["--switch-times", ",".join(map(str, switch_times))]
    if seeds is not None and list(seeds) != list(config.seeds):
        words += ["--seeds", ",".join(map(str, seeds))]
    return shlex.join(words)


def measure(config: SweepConfig, root, switch_times: list[int], seeds: list[int] | None = None, *,
            methods: tuple[str, ...] = ("linear", "string"), n_points: int = 7, string_points: int = 4,
            string_steps: int = 20, spring: float = 0.5, n_eval: int | None = 2000,
            progress: bool = True) -> pd.DataFrame:
    """Scan both paths for every seed (default: the config's) and switch time, skipping
    those already stored; returns :func:`scans` of the store.

    ``n_eval``: images of each split (class-balanced, :func:`eval_images`, from the run's own
    subsets) every point is evaluated on; the string trains on the whole training subset with the sweep's batch size
    and learning rate (generator seeded 0: deterministic on a CPU).
    """
    from .data import load

    sweep = Sweep(config, root)  # refuses a store made by another config
    store, device = sweep.store, resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    data, loaded = None, None
    for base, t in _grid(config, switch_times, seeds):
        path = _path(root, base, t)
        record = path.with_suffix(".json")
        if _stored(path):
            continue
        if loaded != base:  # the data set of this seed's subsets, loaded once for its switch times
            data, loaded = None, base

        def write_record(status: str, **more) -> None:
            atomic_write_json(record, dict(config_digest=sweep.digest, **base, switch_time=t, status=status, **more,
                                           **environment(device)))

        branch = store.run_provenance(RunSpec("efcn", **base, switch_time=t).run)
        if branch is not None and branch["status"] in ("diverged", "trunk_diverged"):  # no basin
            write_record(branch["status"])
            if progress:
                print(f"landscape {path.name}: the eFCN diverged, nothing to measure", flush=True)
            continue
        tick = time.perf_counter()
        states = _weights(store, base, t, device)  # first: missing checkpoints fail fast
        if data is None:
            data = load(config.dataset, config.data_root, n_train=base["n_train"], n_test=config.n_test,
                        seed=base["seed"], device=device)
        rows = _scan_all(_endpoints(base, states, data, device), data, config, methods,
                         n_points, string_points, string_steps, spring, n_eval)
        settings = dict(methods=list(methods), n_points=n_points, string_points=string_points,
                        string_steps=string_steps, spring=spring, n_eval=n_eval, eval_images=EVAL_IMAGES)
        # the record before the rows: killed in between, the rows are missing and measured again
        write_record("done", settings=settings, wall_time_s=time.perf_counter() - tick)
        atomic_write_bytes(path, parquet_bytes(rows.assign(**base, switch_time=t)))
        if progress:
            print(f"landscape {path.name}: {len(rows)} rows", flush=True)
    return scans(root)


#: How the images a path is read on are chosen (recorded in every record's settings): a record
#: without it (measured before 2026-12-06) read the first ``n_eval`` of each split, which for a
#: data set stored by class (the CIFAR-10 JPEG copy) are its first classes only.
EVAL_IMAGES = "class-balanced"


def eval_images(x: torch.Tensor, y: torch.Tensor, n: int | None, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` class-balanced images of ``(x, y)``, drawn once with a generator seeded 0 (the
    same for every path of a store), or all of them when ``n`` is None or not smaller.  Not
    the split's first ``n``: an ImageFolder split is stored class by class, so the first 2,000
    of the JPEG copy's test images are two classes."""
    from .data import balanced_subset

    if n is None or n >= len(y):
        return x, y
    per = int(torch.bincount(y.cpu(), minlength=classes).min())
    n = min(n, classes * per) // classes * classes
    index = balanced_subset(y.cpu(), n, classes, torch.Generator().manual_seed(0)).to(y.device)
    return x[index], y[index]


def _scan_all(endpoints: dict, data, config: SweepConfig, methods, n_points, string_points, string_steps, spring,
              n_eval) -> pd.DataFrame:
    splits = {"train": eval_images(data.x_train, data.y_train, n_eval, data.num_classes),
              "test": eval_images(data.x_test, data.y_test, n_eval, data.num_classes)}
    frames = []
    for name, a_name, b_name in PATHS:
        a, b = endpoints[a_name], endpoints[b_name]
        for method in methods:
            kwargs = {"n_points": n_points}
            if method == "string":
                kwargs = {"points": string(a, b, data.x_train, data.y_train, n_points=string_points,
                                           steps=string_steps, lr=config.lr, spring=spring,
                                           batch_size=config.batch_size, generator=torch.Generator().manual_seed(0))}
            for split, (x, y) in splits.items():
                frames.append(scan(a, b, method, x, y, **kwargs).assign(path=name, split=split))
    return pd.concat(frames, ignore_index=True)


def scans(root) -> pd.DataFrame:
    """Every stored scan row of the store at ``root`` (columns of
    :func:`needle_core.interpolate.scan` plus path, split, arch, width, n_train, seed,
    switch_time); empty when nothing was measured."""
    files = landscape_files(root, ".parquet")  # checked reads (needle_core.store)
    return pd.concat([read_landscape_table(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def results(root) -> pd.DataFrame:
    """The barriers: one row per seed × switch time × path × method, on the training loss,
    columns arch, width, n_train, seed, switch_time, path, method, barrier (nats), loss_a,
    loss_b (the endpoints' training losses), eval_images (:data:`EVAL_IMAGES`, or "first" for a
    point read on each split's first images).  Empty when nothing was measured."""
    rows = scans(root)
    columns = ["arch", "width", "n_train", "seed", "switch_time", "path", "method", "barrier", "loss_a", "loss_b",
               "eval_images"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    point = ["arch", "width", "n_train", "seed", "switch_time"]
    chosen = {tuple(r[k] for k in point): (r["settings"] or {}).get("eval_images", "first")
              for r in records(root).to_dict("records") if isinstance(r.get("settings"), dict)}
    out = []
    keys = point + ["path", "method"]
    for key, g in rows[rows["split"] == "train"].groupby(keys, dropna=False, sort=True):
        loss = g[g["metric"] == "loss"].sort_values("t")["value"]
        out.append(dict(zip(keys, key), barrier=barrier(g), loss_a=float(loss.iloc[0]), loss_b=float(loss.iloc[-1]),
                        eval_images=chosen.get(key[:len(point)], "first")))
    return pd.DataFrame(out, columns=columns)


def records(root) -> pd.DataFrame:
    """The provenance records of the store's points, one row per seed and switch time:
    arch, width, n_train, seed, switch_time, status ("done", or the eFCN's "diverged" /
    "trunk_diverged": nothing measured), scanned (its rows are stored), wall_time_s, settings,
    git_commit, device, and the rest of :func:`needle_core.store.environment`.  Empty when
    nothing was measured."""
    columns = ["arch", "width", "n_train", "seed", "switch_time", "status", "scanned", "wall_time_s", "settings",
               "git_commit", "device"]
    files = landscape_files(root, ".json")  # checked reads (needle_core.store)
    rows = [dict(read_landscape_record(f), scanned=f.with_suffix(".parquet").exists()) for f in files]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=list(dict.fromkeys(columns + list(frame.columns))))


# == Claim 6 by trained curves, with controls (issue 18) ==========================================
#
# A *curve task* of the sweep's graph joins two finished networks of one FC architecture:
#
# * ``efcn-fcn`` (tested): the eFCN switched at t_w and the FCN from scratch, one seed;
# * ``fcn-fcn``: two FCNs from scratch of two seeds (the control that gives a barrier its scale);
# * ``efcn-efcn``: two eFCNs of two seeds switched at the same t_w;
# * ``cnn-cnn``: two finished CNN trunks of two seeds, both embedded (the CNN prior's own solutions).
#
# Every pair is measured the same way (:func:`measure_pair`): the linear path, the linear path
# after weight matching (:func:`needle_core.interpolate.align`), the string and the trained
# quadratic Bézier curve (:func:`needle_core.interpolate.train_curve`), the last two with the
# same pre-declared stopping rule and their convergence traces stored.  A task runs as soon as
# its two endpoint runs are finished (``needs``), on the machine that trained them.

#: The pairs: name -> (role of the first endpoint, role of the second, same seed?, needs t_w?).
PAIRS = {"efcn-fcn": ("efcn", "fcn", True, True), "fcn-fcn": ("fcn", "fcn", False, False),
         "efcn-efcn": ("efcn", "efcn", False, True), "cnn-cnn": ("cnn", "cnn", False, False)}
#: The pairs claim 6's rule reads (:func:`curve_claim`); the others are described beside it.
DECIDING_PAIRS = ("efcn-fcn", "fcn-fcn")
#: Pre-declared constants of the measurement (book/preregistration.md, "Claim 6 by trained curves").
CURVE_POINTS = 11       # the t grid the barrier and the stopping rule read (t = 0, 0.1, ..., 1)
TOLERANCE = 0.01        # an improvement of the curve's maximum training loss counts above 1% (relative)
PATIENCE = 2            # the curve (or string) stops after 2 checks without one
MIN_DELTA = 1e-3        # ... and above 0.001 nats
STRING_POINTS = 5       # the string's points, endpoints included
SPRING = 0.5
CURVE_METHODS = ("linear", "linear-aligned", "string", "curve")


@dataclass(frozen=True)
class CurveSpec:
    """One curve task: ``pair`` (a key of :data:`PAIRS`) between seed ``seed`` and seed
    ``other`` (equal for ``efcn-fcn``) of one (arch, width, n_train) group, at ``switch_time``
    for pairs with an eFCN (None otherwise); ``lr_after`` is the branches' (the sweep's)."""

    pair: str
    arch: str
    width: int
    n_train: int | None
    seed: int
    other: int
    switch_time: int | None = None
    lr_after: float | None = None
    role: str = "curve"  # what a reader of a task's spec (executors, progress) may ask

    @property
    def group(self) -> str:
        n = "all" if self.n_train is None else self.n_train
        return f"{self.arch}-w{self.width}-n{n}"

    @property
    def run(self) -> str:
        """The task's id (the graph's key, and its files' name under ``<store>/landscape/curves``)."""
        t = "" if self.switch_time is None else f"-t{self.switch_time}"
        return f"landscape/{self.group}/{self.pair}-s{self.seed}-s{self.other}{t}"

    @property
    def trunk(self) -> None:
        return None

    @property
    def endpoints(self) -> tuple[RunSpec, RunSpec]:
        first, second, _, with_t = PAIRS[self.pair]

        def spec(role: str, seed: int) -> RunSpec:
            base = dict(arch=self.arch, width=self.width, n_train=self.n_train, seed=seed)
            if role == "efcn":
                return RunSpec("efcn", **base, switch_time=self.switch_time, lr_after=self.lr_after)
            return RunSpec(role, **base)

        return spec(first, self.seed), spec(second, self.other)

    @property
    def needs(self) -> list[str]:
        return [s.run for s in self.endpoints]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("role")
        return dict(d, task=self.run)


def control_pairs(seeds: list[int]) -> list[tuple[int, int]]:
    """The seed pairs of the controls: each seed with the next one, cyclically (``(s0, s1),
    (s1, s2), ..., (s_{n-1}, s0)``), so that every seed is an endpoint of two control curves
    (one pair for two seeds; none for one)."""
    seeds = list(seeds)
    if len(seeds) < 2:
        return []
    if len(seeds) == 2:
        return [(seeds[0], seeds[1])]
    return [(s, seeds[(i + 1) % len(seeds)]) for i, s in enumerate(seeds)]


def curve_tasks(config: SweepConfig) -> list[CurveSpec]:
    """The curve tasks of a sweep (none unless ``config.landscape_switch_times``): for every
    (arch, width, n_train), every seed's (of ``landscape_seeds``, else all) ``efcn-fcn`` at every
    landscape t_w, and the controls
    ``fcn-fcn``, ``cnn-cnn`` (once) and ``efcn-efcn`` (every landscape t_w) over
    :func:`control_pairs`."""
    times = list(getattr(config, "landscape_switch_times", []) or [])
    if not times:
        return []
    # in the sweep's order, whatever the order given: the control pairs are cyclic in it
    seeds = [s for s in config.seeds if config.landscape_seeds is None or s in config.landscape_seeds]
    tasks = []
    for arch in config.archs:
        for width in config.widths:
            for n_train in config.n_trains:
                base = dict(arch=arch, width=width, n_train=n_train, lr_after=config.lr_after)
                for t in times:
                    tasks += [CurveSpec("efcn-fcn", seed=s, other=s, switch_time=t, **base) for s in seeds]
                pairs = control_pairs(seeds)
                tasks += [CurveSpec("fcn-fcn", seed=s, other=o, **base) for s, o in pairs]
                tasks += [CurveSpec("cnn-cnn", seed=s, other=o, **base) for s, o in pairs]
                for t in times:
                    tasks += [CurveSpec("efcn-efcn", seed=s, other=o, switch_time=t, **base) for s, o in pairs]
    return tasks


def _task_key(row) -> tuple:
    """A curve task's identity from a row of a curve table or a :class:`CurveSpec` (numbers as
    ints, None for a missing n_train or switch time: tables store them as floats and NaN)."""
    def whole(value):
        return None if value is None or pd.isna(value) else int(value)

    return (row.pair, row.arch, int(row.width), whole(row.n_train), int(row.seed), int(row.other),
            whole(row.switch_time))


def planned_only(frame: pd.DataFrame, config: SweepConfig) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a curve table (:func:`curve_results`, :func:`curve_traces`,
    :func:`curve_scans`, :func:`curve_records`) whose task ``config`` plans (:func:`curve_tasks`:
    its ``landscape_seeds`` and ``landscape_switch_times``), and the ids of the tasks it holds
    beyond them; a config that plans no curve keeps every row."""
    tasks = curve_tasks(config)
    if frame.empty or not tasks:
        return frame, []
    planned = {_task_key(t) for t in tasks}
    keys = [_task_key(r) for r in frame.itertuples()]
    keep = pd.Series([key in planned for key in keys], index=frame.index)
    extra = sorted({CurveSpec(*key[:6], switch_time=key[6]).run for key in set(keys) - planned})
    return frame[keep].reset_index(drop=True), extra


def curve_settings(config: SweepConfig) -> dict:
    """Everything that changes a curve task's numbers besides its endpoints (recorded with
    every task; a store's tasks must agree on it)."""
    return dict(n_curve=config.landscape_n_train, n_test=config.landscape_n_test, points=CURVE_POINTS,
                tolerance=TOLERANCE, patience=PATIENCE, min_delta=MIN_DELTA,
                check_steps=config.landscape_check_steps,
                max_steps=config.landscape_max_steps, string_points=STRING_POINTS, spring=SPRING,
                lr=config.lr, batch_size=config.batch_size, threads=config.threads,
                methods=list(CURVE_METHODS), test_images=EVAL_IMAGES)


def _curve_files(root, spec: CurveSpec) -> dict[str, Path]:
    base = Path(root) / "landscape" / "curves" / spec.group / spec.run.rsplit("/", 1)[1]
    return {"record": base.with_suffix(".json"), "rows": Path(f"{base}.parquet"),
            "trace": Path(f"{base}-trace.parquet"), "lock": Path(f"{base}.lock")}


def curve_finished(root, spec: CurveSpec) -> bool:
    """Whether the task is done: its record (written last) exists."""
    return _curve_files(root, spec)["record"].exists()


def _final_state(store: ResultStore, spec: RunSpec, config: SweepConfig, device) -> tuple[dict, dict]:
    """``(state dict, note)`` of a finished run's final weights.  Where they are not here (a
    fresh clone: final weights are never committed) the run is re-trained, deterministically,
    in a scratch store beside this one, under the run's lock, and its final weights are saved
    into this store (checked against its recorded accuracies: ``note["recreated"]`` holds the
    largest difference)."""
    import shutil

    from .run import execute

    state = store.load_checkpoint(spec.run, "final", map_location=device)
    if state is not None:
        return state["model"], {}
    with store.lock(spec.run) as lock:
        lock.acquire()
        state = store.load_checkpoint(spec.run, "final", map_location=device)
        if state is not None:
            return state["model"], {}
        scratch = store.root / ".recreate" / f"{spec.run.replace('/', '--')}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            if spec.trunk:
                execute(RunSpec("cnn", spec.arch, spec.width, spec.n_train, spec.seed), config, scratch)
            execute(spec, config, scratch)
            again = ResultStore(scratch)
            state = again.load_checkpoint(spec.run, "final", map_location="cpu")
            mine, theirs = store.metrics(spec.run), again.metrics(spec.run)
            key = ["epoch", "metric", "layer"]
            both = mine.merge(theirs, on=key, suffixes=("", "_again"))
            both = both[both["metric"].str.endswith("_acc")]
            gap = float((both["value"] - both["value_again"]).abs().max()) if len(both) else float("nan")
            if gap:
                warnings.warn(f"{spec.run} re-trained to recreate its final weights differs from its recorded "
                              f"accuracies by up to {gap:.4f} (another processor's kernels?).")
            store.save_checkpoint(spec.run, "final", state)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    state = store.load_checkpoint(spec.run, "final", map_location=device)
    return state["model"], {"recreated": {spec.run: gap}}


def _pair_data(config: SweepConfig, spec: CurveSpec, device):
    """``(x, y, x_test, y_test, note, classes)``: the curve's training images and the test images.

    The training images are ``landscape_n_train`` class-balanced images (drawn by a
    generator seeded by the pair) that *both* endpoints were trained on: the intersection of
    the two seeds' training subsets (one seed's own subset for a same-seed pair), so that
    every pair, tested or control, is measured on data that is training data for both of its
    ends.  A data set whose seeds share no image (``synthetic``: each seed draws its own)
    falls back on the first endpoint's training set, and the note says so.  Test images:
    ``landscape_n_test`` class-balanced ones of the first seed's test set (:func:`eval_images`)."""
    from .data import balanced_subset, load

    n = config.landscape_n_train
    own = load(config.dataset, config.data_root, n_train=spec.n_train, n_test=config.n_test, seed=spec.seed,
               device=device)
    g = torch.Generator().manual_seed(1_000_003 * spec.seed + spec.other)
    classes = own.num_classes
    note = "training images of both endpoints"
    if spec.seed == spec.other or config.dataset == "synthetic":
        x, y = own.x_train, own.y_train
        if spec.seed != spec.other:
            note = "the first endpoint's training images (the data set's seeds share none)"
    else:
        full = load(config.dataset, config.data_root, n_train=None, n_test=config.n_test,
                    seed=spec.seed, device="cpu")
        if spec.n_train is None:
            x, y = full.x_train, full.y_train
        else:
            first = balanced_subset(full.y_train, spec.n_train, classes, torch.Generator().manual_seed(spec.seed))
            second = balanced_subset(full.y_train, spec.n_train, classes, torch.Generator().manual_seed(spec.other))
            shared = first[torch.isin(first, second)]
            x, y = full.x_train[shared], full.y_train[shared]
        x, y = x.to(device), y.to(device)
        del full
    if n is not None:
        per = torch.bincount(y.cpu(), minlength=classes).min()
        if n > classes * int(per):
            raise ValueError(f"landscape_n_train={n}: only {int(per)} images of the rarest class are {note} "
                             f"for {spec.run}; lower landscape_n_train to at most {classes * int(per)}.")
        index = balanced_subset(y.cpu(), n, classes, g).to(y.device)
        x, y = x[index], y[index]
    return (x, y, *eval_images(own.x_test, own.y_test, config.landscape_n_test, classes), note, classes)


def _fc_network(spec: RunSpec, state: dict, shape, classes: int, device) -> torch.nn.Module:
    """A run's final weights as a network of FC space (a CNN embedded)."""
    return _network(spec, state, shape, classes, device, {"cnn": "cnn", "efcn": "efcn", "fcn": "fcn"}[spec.role])


def measure_pair(a: torch.nn.Module, b: torch.nn.Module, x, y, x_test, y_test, *, lr: float, batch_size: int,
                 max_steps: int, check_steps: int, eval_batch_size: int = 1000,
                 generator_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every method of :data:`CURVE_METHODS` between ``a`` and ``b`` (FC space), with the
    pre-declared settings.  Returns ``(rows, trace, timing)``: ``rows`` the losses and
    accuracies along each path (columns of :func:`needle_core.interpolate.scan` and
    ``split``), ``trace`` the string's and the curve's convergence checks (``method``,
    ``check``, ``step``, ``t``, ``loss``, ``stopped``), ``timing`` seconds per method, steps
    taken and whether the rule (not the budget) stopped each."""
    from . import interpolate as ip

    ts = np.linspace(0, 1, CURVE_POINTS)
    splits = {"train": (x, y), "test": (x_test, y_test)}
    frames, traces, timing = [], [], {}

    def scan_all(method, to=b, via="linear", **kwargs):
        for split, (xs, ys) in splits.items():
            frames.append(ip.scan(a, to, via, xs, ys, ts=ts, batch_size=eval_batch_size, **kwargs)
                          .assign(method=method, split=split))

    tick = time.perf_counter()
    scan_all("linear")
    timing["linear_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    aligned = ip.align(a, b, x[:8])
    timing["align_s"] = time.perf_counter() - tick
    scan_all("linear-aligned", to=aligned)
    del aligned
    # the string, with its own convergence trace (same rule, same budget)
    tick, rule, rows = time.perf_counter(), ip.Plateau(TOLERANCE, PATIENCE, MIN_DELTA), []

    def check(step, points):
        losses = ip.path_losses(points, x, y, batch_size=eval_batch_size)
        index = len(rule.values)
        rows.extend(dict(method="string", check=index, step=step, t=i / (len(points) - 1), loss=v, stopped=False)
                    for i, v in enumerate(losses))
        return rule.update(ip.excess([i / (len(points) - 1) for i in range(len(points))], losses))

    points = ip.string(a, b, x, y, n_points=STRING_POINTS, steps=max_steps, lr=lr, spring=SPRING,
                       batch_size=batch_size, generator=torch.Generator().manual_seed(generator_seed),
                       check=check, check_every=check_steps)
    string_trace = pd.DataFrame(rows)
    stopped = rule.stopped
    string_trace.loc[string_trace["check"] == string_trace["check"].max(), "stopped"] = stopped
    timing.update(string_s=time.perf_counter() - tick, string_steps=int(string_trace["step"].max()),
                  string_stopped_by_rule=bool(stopped))
    for split, (xs, ys) in splits.items():
        frames.append(ip.scan(a, b, "string", xs, ys, points=points, batch_size=eval_batch_size)
                      .assign(split=split))
    del points
    tick = time.perf_counter()
    bend, trace = ip.train_curve(a, b, x, y, lr=lr, batch_size=batch_size, max_steps=max_steps,
                                 check_every=check_steps, ts=ts, tolerance=TOLERANCE, patience=PATIENCE,
                                 min_delta=MIN_DELTA,
                                 generator=torch.Generator().manual_seed(generator_seed),
                                 eval_batch_size=eval_batch_size)
    timing.update(curve_s=time.perf_counter() - tick, curve_steps=int(trace["step"].max()),
                  curve_stopped_by_rule=bool(trace["stopped"].any()))
    scan_all("curve", via="bezier", bend=bend)
    traces = pd.concat([string_trace, trace.assign(method="curve")], ignore_index=True)
    rows = pd.concat(frames, ignore_index=True)
    return rows, traces[["method", "check", "step", "t", "loss", "stopped"]], timing


def execute_curve(spec: CurveSpec, config: SweepConfig, root, wait: bool = True) -> str:
    """Run one curve task (idempotent, resumable at task granularity, under its lock):
    returns "done", "finished" (done before), "busy" (another process runs it, ``wait=False``)
    or the status recorded when an endpoint has no basin ("endpoint_diverged")."""
    from .lock import FileLock
    from .run import BUSY, resolve_device
    from .store import environment

    files = _curve_files(root, spec)
    if files["record"].exists():
        return "finished"
    files["lock"].parent.mkdir(parents=True, exist_ok=True)
    with FileLock(files["lock"]) as lock:
        if not lock.acquire(wait=wait):
            return BUSY
        if files["record"].exists():
            return "finished"
        store, device = ResultStore(root), resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        settings, digest = curve_settings(config), config.digest()
        record = dict(spec.to_dict(), config_digest=digest, settings=settings)
        provs = [store.run_provenance(s.run) for s in spec.endpoints]
        bad = [(s.run, p and p["status"]) for s, p in zip(spec.endpoints, provs) if p is None or p["status"] != "done"]
        if bad:
            if any(p is None for _, p in bad):
                raise FileNotFoundError(f"{spec.run} needs {bad[0][0]}, which is not finished: run the sweep.")
            atomic_write_json(files["record"], dict(record, status="endpoint_diverged", endpoints_status=dict(bad),
                                                    **environment(device)))
            return "endpoint_diverged"
        tick = time.perf_counter()
        notes = {}
        states = []
        for s in spec.endpoints:
            state, note = _final_state(store, s, config, device)
            states.append(state)
            notes.update(note.get("recreated", {}))
        recreate_s = time.perf_counter() - tick
        x, y, xt, yt, data_note, classes = _pair_data(config, spec, device)
        shape = tuple(x.shape[1:])
        a, b = (_fc_network(s, st, shape, classes, device) for s, st in zip(spec.endpoints, states))
        del states
        tick = time.perf_counter()
        rows, trace, timing = measure_pair(a, b, x, y, xt, yt, lr=config.lr, batch_size=config.batch_size,
                                           max_steps=config.landscape_max_steps,
                                           check_steps=config.landscape_check_steps,
                                           eval_batch_size=config.eval_batch_size)
        keys = spec.to_dict()
        atomic_write_bytes(files["rows"], parquet_bytes(rows.assign(**keys)))
        atomic_write_bytes(files["trace"], parquet_bytes(trace.assign(**keys)))
        atomic_write_json(files["record"], dict(record, status="done", data=data_note, n_curve=len(x),
                                                n_test=len(xt), timing=timing, recreated=notes,
                                                recreate_s=recreate_s, wall_time_s=time.perf_counter() - tick,
                                                **environment(device)))
        return "done"


def _read(root, suffix: str) -> pd.DataFrame:
    base = Path(root) / "landscape" / "curves"
    files = sorted(p for p in base.glob(f"*/*{suffix}") if suffix != ".parquet" or not p.name.endswith("-trace.parquet")) \
        if base.exists() else []
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def curve_scans(root) -> pd.DataFrame:
    """Every stored row along the curve tasks' paths: columns t, method, metric ("loss",
    "accuracy"), value, split ("train": the curve's training images; "test") and the task's
    keys (pair, arch, width, n_train, seed, other, switch_time, lr_after, task)."""
    return _read(root, ".parquet")


def curve_traces(root) -> pd.DataFrame:
    """The convergence traces of the strings and curves: method, check, step, t, loss
    (training loss on the curve's images at that t), stopped, and the task's keys."""
    return _read(root, "-trace.parquet")


def curve_records(root) -> pd.DataFrame:
    """One row per finished curve task: its keys, status, settings, data, timing (seconds
    per method, steps, stopped_by_rule), wall_time_s, recreated endpoints, provenance."""
    base = Path(root) / "landscape" / "curves"
    files = sorted(base.glob("*/*.json")) if base.exists() else []
    return pd.DataFrame([json.loads(f.read_text()) for f in files])


def wall_times(root, cfg: dict | None = None, curves: pd.DataFrame | None = None) -> dict[str, float]:
    """Seconds the store's landscape measurements took, summed over their records (of the
    configuration ``cfg``, its arch, width and n_train, when given): ``string`` (the
    string-path points, :func:`records`) and ``curve`` (the curve tasks: ``curves``, a
    :func:`curve_records` table already narrowed to the tasks a config plans
    (:func:`planned_only`), else every record of the store); 0.0 where nothing was measured."""
    from .analysis.readouts import select

    def total(frame: pd.DataFrame) -> float:
        if frame.empty or "wall_time_s" not in frame:
            return 0.0
        if cfg is not None:
            frame = frame[select(frame, cfg)]
        return float(pd.to_numeric(frame["wall_time_s"], errors="coerce").fillna(0).sum())

    return dict(string=total(records(root)), curve=total(curve_records(root) if curves is None else curves))


KEYS = ["pair", "arch", "width", "n_train", "seed", "other", "switch_time"]


def curve_results(root) -> pd.DataFrame:
    """The barriers of the curve tasks: one row per task × method, columns of :data:`KEYS`,
    method, barrier (nats of training loss over the chord, on the curve's images), loss_a,
    loss_b (the endpoints'), test_acc_a, test_acc_b and test_acc_min (the lowest test
    accuracy along the path).  Empty when nothing was measured."""
    from .interpolate import barrier

    rows = curve_scans(root)
    columns = KEYS + ["method", "barrier", "loss_a", "loss_b", "test_acc_a", "test_acc_b", "test_acc_min"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for key, g in rows.groupby(KEYS + ["method"], dropna=False, sort=True):
        train = g[g["split"] == "train"]
        loss = train[train["metric"] == "loss"].sort_values("t")["value"]
        acc = g[(g["split"] == "test") & (g["metric"] == "accuracy")].sort_values("t")["value"]
        out.append(dict(zip(KEYS + ["method"], key), barrier=barrier(train), loss_a=float(loss.iloc[0]),
                        loss_b=float(loss.iloc[-1]), test_acc_a=float(acc.iloc[0]), test_acc_b=float(acc.iloc[-1]),
                        test_acc_min=float(acc.min())))
    return pd.DataFrame(out, columns=columns)


#: The margin of the rule (nats): a barrier difference below it is no separation.
MARGIN = 0.05


def curve_differences(barriers: pd.DataFrame, method: str = "curve", control: str = "fcn-fcn") -> pd.DataFrame:
    """The paired differences of the rule: for every seed s and t_w, the ``efcn-fcn`` barrier
    of s minus the mean ``control`` barrier of the control pairs that have s as an endpoint
    (at the same t_w for ``efcn-efcn``).  Columns seed, switch_time, tested, control,
    difference.  ``barriers``: :func:`curve_results` (columns pair, seed, other, switch_time,
    method, barrier)."""
    rows = barriers[barriers["method"] == method]
    tested = rows[rows["pair"] == "efcn-fcn"]
    controls = rows[rows["pair"] == control]
    out = []
    for r in tested.itertuples():
        c = controls[(controls["seed"] == r.seed) | (controls["other"] == r.seed)]
        if control == "efcn-efcn":
            c = c[c["switch_time"] == r.switch_time]
        if c.empty or not np.isfinite(r.barrier):
            continue
        value = float(c["barrier"].mean())
        out.append(dict(seed=r.seed, switch_time=r.switch_time, tested=r.barrier, control=value,
                        difference=r.barrier - value))
    return pd.DataFrame(out, columns=["seed", "switch_time", "tested", "control", "difference"])


def curve_claim(barriers: pd.DataFrame, method: str = "curve", margin: float = MARGIN,
                switch_times: list[int] | None = None) -> dict:
    """Claim 6 by trained curves, the rule of book/preregistration.md ("Claim 6 by trained
    curves (converged edition)").

    ``barriers``: :func:`curve_results` of a store (columns pair, seed, other, switch_time,
    method, barrier; one (arch, width, n_train) group).  Per tested t_w, the paired
    difference d_s = (eFCN → FCN curve barrier of seed s) − (mean FCN ↔ FCN curve barrier of
    the control pairs with seed s as an endpoint).  *Reproduces* if the 95% interval of the
    mean d lies above ``margin`` (0.05 nats) at every tested t_w; *contradicted* if at some
    t_w its Bonferroni-corrected interval (over the tested t_w) lies below ``margin``
    (a trained curve joins eFCN and FCN with a barrier no larger than the control's, up to
    the margin); otherwise *inconclusive*; *not measured* without the tested pairs and their
    controls, or with fewer than 2 finite differences at some t_w.  ``switch_times``: the
    tested t_w as registered (``landscape_switch_times``); default: those the data hold.

    Returns dict(verdict, reason, per_tw (a DataFrame: switch_time, n, mean, lo, hi, lo_corr,
    hi_corr, tested, control), described (a DataFrame of the other controls and methods:
    pair, method, switch_time, n, mean, lo, hi))."""
    described = _describe(barriers)
    diffs = curve_differences(barriers, method)
    times = sorted(switch_times) if switch_times is not None else sorted(
        barriers.loc[(barriers["pair"] == "efcn-fcn") & (barriers["method"] == method), "switch_time"].dropna().unique()
    ) if not barriers.empty else []
    per = []
    m = max(len(times), 1)
    for t in times:
        d = diffs[(diffs["switch_time"] == t) & np.isfinite(diffs["difference"].astype(float))]  # n: usable pairs
        mean, lo, hi, _ = interval(d["difference"], 0.95)
        _, lo_c, hi_c, _ = interval(d["difference"], 1 - 0.05 / m)
        per.append(dict(switch_time=int(t), n=len(d), mean=mean, lo=lo, hi=hi, lo_corr=lo_c, hi_corr=hi_c,
                        tested=float(d["tested"].mean()) if len(d) else float("nan"),
                        control=float(d["control"].mean()) if len(d) else float("nan")))
    per = pd.DataFrame(per, columns=["switch_time", "n", "mean", "lo", "hi", "lo_corr", "hi_corr", "tested",
                                     "control"])
    if per.empty or (per["n"] < 2).any():
        return dict(verdict="not measured", reason="no eFCN → FCN curves with FCN ↔ FCN controls at every tested "
                    "t_w (2 seeds at least)", per_tw=per, described=described)
    if (per["lo"] > margin).all():
        verdict, reason = "reproduces", (f"at every t_w the 95% interval of (eFCN → FCN) − (FCN ↔ FCN) lies above "
                                         f"{margin} nats")
    elif (per["hi_corr"] < margin).any():
        ts = ", ".join(str(t) for t in per.loc[per["hi_corr"] < margin, "switch_time"])
        verdict, reason = "contradicted", (f"at t_w = {ts} the corrected interval lies below {margin} nats: a "
                                           "trained curve joins eFCN and FCN as easily as two FCNs (up to the margin)")
    else:
        verdict, reason = "inconclusive", "neither rule's condition holds at every (some) t_w"
    return dict(verdict=verdict, reason=reason, per_tw=per, described=described)


def accuracy_lost(curves: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy lost along the trained curves, per pair and t_w (description, not a
    test): the worse end's test accuracy minus the lowest along the curve (fraction of the
    test images; 0 when the curve never dips below its worse end), its mean, 95% interval
    over the pairs of seeds and largest value.  ``curves``: :func:`curve_results` (one
    (arch, width, n_train) group).  Columns pair, switch_time (NaN for controls without
    one, as in ``curves``), n, mean, lo, hi, max; rows in :data:`PAIRS` order, then by t_w."""
    columns = ["pair", "switch_time", "n", "mean", "lo", "hi", "max"]
    trained = curves[curves["method"] == "curve"] if len(curves) else curves
    if trained.empty:
        return pd.DataFrame(columns=columns)
    lost = trained[["test_acc_a", "test_acc_b"]].astype(float).min(axis=1) - trained["test_acc_min"].astype(float)
    out = []
    for (pair, t), g in lost.groupby([trained["pair"], trained["switch_time"].fillna(-1)], sort=False):
        mean, lo, hi, n = interval(g, 0.95)
        out.append(dict(pair=pair, switch_time=float("nan") if t == -1 else t, n=n, mean=mean, lo=lo, hi=hi,
                        max=float(g.max()) if n else float("nan")))
    order = list(PAIRS)
    out.sort(key=lambda r: (order.index(r["pair"]), -1 if np.isnan(r["switch_time"]) else r["switch_time"]))
    return pd.DataFrame(out, columns=columns)


def _describe(barriers: pd.DataFrame) -> pd.DataFrame:
    """Mean barrier and 95% interval over seeds of every pair × method × t_w (description)."""
    out = []
    if barriers.empty:
        return pd.DataFrame(columns=["pair", "method", "switch_time", "n", "mean", "lo", "hi"])
    for (pair, method, t), g in barriers.groupby(["pair", "method", barriers["switch_time"].fillna(-1)], sort=True):
        mean, lo, hi, _ = interval(g["barrier"], 0.95)
        out.append(dict(pair=pair, method=method, switch_time=None if t == -1 else int(t), n=len(g), mean=mean,
                        lo=lo, hi=hi))
    return pd.DataFrame(out)
