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
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch

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

    ``n_eval``: images of each split (the first of the run's own subsets) every point is
    evaluated on; the string trains on the whole training subset with the sweep's batch size
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
                        string_steps=string_steps, spring=spring, n_eval=n_eval)
        # the record before the rows: killed in between, the rows are missing and measured again
        write_record("done", settings=settings, wall_time_s=time.perf_counter() - tick)
        atomic_write_bytes(path, parquet_bytes(rows.assign(**base, switch_time=t)))
        if progress:
            print(f"landscape {path.name}: {len(rows)} rows", flush=True)
    return scans(root)


def _scan_all(endpoints: dict, data, config: SweepConfig, methods, n_points, string_points, string_steps, spring,
              n_eval) -> pd.DataFrame:
    splits = {"train": (data.x_train[:n_eval], data.y_train[:n_eval]),
              "test": (data.x_test[:n_eval], data.y_test[:n_eval])}
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
    loss_b (the endpoints' training losses).  Empty when nothing was measured."""
    rows = scans(root)
    columns = ["arch", "width", "n_train", "seed", "switch_time", "path", "method", "barrier", "loss_a", "loss_b"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = []
    keys = ["arch", "width", "n_train", "seed", "switch_time", "path", "method"]
    for key, g in rows[rows["split"] == "train"].groupby(keys, dropna=False, sort=True):
        loss = g[g["metric"] == "loss"].sort_values("t")["value"]
        out.append(dict(zip(keys, key), barrier=barrier(g), loss_a=float(loss.iloc[0]), loss_b=float(loss.iloc[-1])))
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
