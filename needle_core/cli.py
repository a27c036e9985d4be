"""``python -m needle_core``: run sweeps and reproduce the book.

    python -m needle_core sweep --profile smoke
    python -m needle_core sweep --profile cpu --set dataset=folder:/data/cifar10-jpeg.tar.gz --set seeds=[0]
    python -m needle_core sweep --profile paper --config my.yaml --out runs/paper
    python -m needle_core reproduce --profile cpu
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

from .config import PROFILES, SweepConfig, make_config, overrides_of, parse_overrides


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="named config (default: smoke)")
    p.add_argument("--config", metavar="YAML", help="YAML file of config fields overriding the profile")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config field (YAML syntax), e.g. --set epochs=20 --set seeds=[0,1]")
    p.add_argument("--out", help="result store folder (default: runs/<profile>)")


def recorded_config(root, config: SweepConfig) -> SweepConfig:
    """The config a store at ``root`` records (``config.json``) when it was made from the
    profile of ``config``: what ``reproduce`` re-renders on a clone (the data set included)."""
    path = Path(root) / "config.json"
    if not path.exists():
        return config
    recorded = json.loads(path.read_text())["config"]
    if recorded.get("name") != config.name:
        return config
    return make_config(config.name, {k: v for k, v in recorded.items() if k != "name"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m needle_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="train every run of a profile's grid that is not finished yet")
    _common(sweep)
    sweep.add_argument("--executor", default="local", help="local (default) or dask")
    sweep.add_argument("--scheduler", help="dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    sweep.add_argument("--dry-run", action="store_true", help="validate the config and list the runs, train nothing")
    sweep.add_argument("--only", metavar="GLOB", action="append", default=[],
                       help="run only the runs whose id matches (and their trunks), e.g. --only '*-s0/*': "
                            "a slice of a sweep; slices of one config merge into one store")
    sweep.add_argument("--allow-dirty", action="store_true",
                       help="write into a published store (tracked by git) from a tree with uncommitted changes")
    land = sub.add_parser("landscape", help="measure the loss barriers between a finished sweep's networks "
                          "(needs its checkpoints) into <store>/landscape/")
    _common(land)
    land.add_argument("--switch-times", required=True, help="comma-separated t_w of the grid, e.g. 2,8,16")
    land.add_argument("--seeds", help="comma-separated seeds (default: the config's)")
    repro = sub.add_parser("reproduce", help="run a profile's sweeps, then execute every notebook into book/")
    _common(repro)
    args = parser.parse_args(argv)

    try:
        overrides = parse_overrides(args.set)
        config = make_config(args.profile, overrides, args.config)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    from .sweep import Sweep, default_root

    root = args.out or default_root(args.profile)
    if args.command == "reproduce" and not (args.set or args.config):
        config = recorded_config(root, config)
    if args.command == "landscape":
        from . import landscape

        ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
        try:
            landscape.measure(config, root, ints(args.switch_times), ints(args.seeds) if args.seeds else None)
        except ValueError as err:
            parser.exit(2, f"error: {err}\n")
        print(landscape.results(root).to_string(index=False))
        return 0
    only = getattr(args, "only", [])
    executor = "local"
    if args.command == "sweep" and args.executor != "local":
        from . import cluster

        executor = cluster.make_executor(args.executor, args.scheduler)
    try:
        sweep = Sweep(config, root, executor, allow_dirty=getattr(args, "allow_dirty", False))
        if args.command == "sweep" and args.dry_run:
            for task in sweep.tasks(only):
                print(task.spec.run, "<-", ", ".join(task.needs) or "-")
            return 0
        sweep.run(progress=True, only=only)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    counts = collections.Counter(sweep.statuses.values())
    print(f"sweep {config.name} into {root}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if not counts.keys() & {"done", "finished"}:
        parser.exit(1, "error: no run of the sweep finished (every run diverged): see the runs' provenance.json\n")
    if args.command == "reproduce":
        from .book import execute_all

        execute_all(args.profile, results_dir=str(root), overrides=overrides_of(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
