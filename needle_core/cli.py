"""``python -m needle_core``: run sweeps and reproduce the book.

    python -m needle_core sweep --profile smoke
    python -m needle_core sweep --profile cpu --set dataset=folder:/data/cifar10-jpeg.tar.gz --set seeds=[0]
    python -m needle_core sweep --profile paper --config my.yaml --out runs/paper
    python -m needle_core reproduce --profile cpu
"""
from __future__ import annotations

import argparse
import sys

from .config import PROFILES, make_config, overrides_of, parse_overrides


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="named config (default: smoke)")
    p.add_argument("--config", metavar="YAML", help="YAML file of config fields overriding the profile")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config field (YAML syntax), e.g. --set epochs=20 --set seeds=[0,1]")
    p.add_argument("--out", help="result store folder (default: runs/<profile>)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m needle_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="train every run of a profile's grid that is not finished yet")
    _common(sweep)
    sweep.add_argument("--executor", default="local", help="local (default) or dask")
    sweep.add_argument("--scheduler", help="dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    sweep.add_argument("--dry-run", action="store_true", help="validate the config and list the runs, train nothing")
    repro = sub.add_parser("reproduce", help="run a profile's sweeps, then execute every notebook into book/")
    _common(repro)
    args = parser.parse_args(argv)

    try:
        overrides = parse_overrides(args.set)
        config = make_config(args.profile, overrides, args.config)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    from .sweep import Sweep, default_root, graph

    root = args.out or default_root(args.profile)
    if args.command == "sweep" and args.dry_run:
        for task in graph(config):
            print(task.spec.run, "<-", ", ".join(task.needs) or "-")
        return 0
    executor = "local"
    if args.command == "sweep" and args.executor != "local":
        from . import cluster

        executor = cluster.make_executor(args.executor, args.scheduler)
    Sweep(config, root, executor).run(progress=True)
    if args.command == "reproduce":
        from .book import execute_all

        execute_all(args.profile, results_dir=str(root), overrides=overrides_of(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
