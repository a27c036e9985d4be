"""What produced a result, in words, for the captions and the scorecard: the data set, the
profile, the hardware and the wall time of the runs, from the store's provenance and the
sweep's config.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd


def _config_dict(config) -> dict:
    if config is None:
        return {}
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def dataset_label(name: str) -> str:
    """A reader's name for a dataset string of the config: the JPEG copy of CIFAR-10 (an
    ImageFolder archive named ``cifar10-jpeg*``) is labelled as such, since accuracies on it
    run below those on the original batches."""
    if name.startswith("folder:"):
        base = Path(name[len("folder:"):]).name
        return "CIFAR-10 (JPEG copy)" if base.startswith("cifar10-jpeg") else f"ImageFolder {base}"
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "synthetic": "synthetic"}.get(name, name)


def describe(provenance: pd.DataFrame, config=None, runs: Iterable[str] | None = None) -> dict:
    """What produced a result, for :func:`needle_core.plots.caption` and the scorecard:
    ``data`` (data set, subset sizes, architectures, seeds, epochs), ``profile``,
    ``hardware`` (the devices the runs ran on) and ``wall_time`` (seconds, summed over
    ``runs``, default all runs of ``provenance``).  ``config`` is the sweep's
    :class:`~needle_core.config.SweepConfig` (or its dict); without it the data is described
    from the provenance alone."""
    prov = provenance if runs is None else provenance[provenance["run"].isin(list(runs))]
    cfg = _config_dict(config)
    if cfg:
        n_train = ", ".join("all" if n is None else f"{n:,}" for n in cfg["n_trains"])
        n_test = "all" if cfg.get("n_test") is None else f"{cfg['n_test']:,}"
        nets = ", ".join(f"{a} w{w}" for a in cfg["archs"] for w in cfg["widths"])
        seeds = cfg["seeds"]
        data = (f"{dataset_label(cfg['dataset'])} ({n_train} train / {n_test} test), {nets}, {len(seeds)} seeds "
                f"({', '.join(map(str, seeds))}), {cfg['epochs']} epochs, batch {cfg.get('batch_size', 250)}, lr {cfg['lr']:g}"
                + (f"→{cfg['lr_after']:g}" if cfg.get("lr_after") is not None else "")
                + (f", {cfg['precision']} autocast" if cfg.get("precision", "fp32") != "fp32" else ""))
        profile = cfg.get("name", "custom")
    else:
        nets = ", ".join(sorted({f"{a} w{w}" for a, w in zip(prov.get("arch", []), prov.get("width", []))}))
        seeds = sorted(set(prov.get("seed", [])))
        data = f"{nets}, {len(seeds)} seeds"
        profile = "unknown"
    devices = sorted({str(d) for d in prov.get("device", []) if d is not None and d == d})
    wall = float(pd.to_numeric(prov.get("wall_time_s", pd.Series(dtype=float))).fillna(0).sum())
    n_div = int(prov["status"].astype(str).str.contains("diverged").sum()) if "status" in prov else 0
    out = dict(data=data, profile=profile, hardware=", ".join(devices) or "unknown", wall_time=wall,
               runs=f"{len(prov)}" + (f" ({n_div} diverged)" if n_div else ""))
    return out
