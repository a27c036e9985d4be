"""``python -m needle_core``: run sweeps and reproduce the book.

    python -m needle_core sweep --profile smoke
    python -m needle_core sweep --profile cpu --set dataset=folder:/data/cifar10-jpeg.tar.gz --set seeds=[0]
    python -m needle_core sweep --profile paper --config my.yaml --out runs/paper
    python -m needle_core reproduce --profile cpu
    python -m needle_core verify --out runs/cpu
    python -m needle_core sizes --model alexnet --width 64 --input-shape 3,32,32
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import traceback
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
    repro = sub.add_parser("reproduce", help="run a profile's sweep, then execute its edition's pages into book/ "
                           "(needle_core.book.EDITION; every notebook for a profile without one)")
    _common(repro)
    verify = sub.add_parser("verify", help="check every file of a result store against its checksum (exit 1 on damage)")
    where = verify.add_mutually_exclusive_group()
    where.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="the store runs/<profile>")
    where.add_argument("--out", help="the store's folder")
    sizes = sub.add_parser("sizes", help="the memory each conv of a model takes once embedded (eFCN, eLCN), "
                           "computed from shapes on the meta device: nothing is allocated")
    sizes.add_argument("--model", default="vanilla",
                       help="vanilla, alexnet, or torchvision:NAME (e.g. torchvision:resnet18); default vanilla")
    sizes.add_argument("--width", type=int, default=64, help="width ch of vanilla/alexnet (default 64)")
    sizes.add_argument("--input-shape", default="3,32,32", help="one input, without the batch (default 3,32,32)")
    args = parser.parse_args(argv)
    if args.command == "sizes":
        return _sizes(args)
    from .sweep import NeedFailed, RunsFailed, Sweep, default_root

    root = args.out or default_root(args.profile)
    if args.command == "verify":
        return _verify(root)
    try:
        overrides = parse_overrides(args.set)
        config = make_config(args.profile, overrides, args.config)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    from .data import DatasetNotFound
    from .io import DiskFull

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
    failed = None
    try:
        sweep = Sweep(config, root, executor, allow_dirty=getattr(args, "allow_dirty", False))
        if args.command == "sweep" and args.dry_run:
            for task in sweep.tasks(only):
                print(task.spec.run, "<-", ", ".join(task.needs) or "-")
            return 0
        train = not (args.command == "reproduce" and sweep.missing_data is not None)
        if not train:  # a clone without the data set: re-render what the store has, train nothing
            print(f"warning: {sweep.missing_data}\n  re-rendering the finished runs of {root} only; the missing ones "
                  f"need that data set (then: python -m needle_core sweep --profile {config.name} "
                  f"--set dataset=folder:/path/to/it).", file=sys.stderr)
        try:
            if train:
                sweep.run(progress=True, only=only)
            else:
                sweep.statuses = {run: "finished" for run in sweep.store.finished_runs()}
        except RunsFailed as error:
            failed = error
    except (ValueError, DatasetNotFound) as err:
        parser.exit(2, f"error: {err}\n")
    except DiskFull as err:
        parser.exit(1, f"error: {err}\n")
    counts = collections.Counter(sweep.statuses.values())
    print(f"sweep {config.name} into {root}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if failed is not None:
        for run, error in sorted(failed.errors.items()):
            if not isinstance(error, (ValueError, OSError, NeedFailed)):  # a bug: its traceback helps
                traceback.print_exception(error, file=sys.stderr)
        parser.exit(1, f"error: {failed}\n" + "".join(f"  {run}: {_one_line(error)}\n"
                                                      for run, error in sorted(failed.errors.items())))
    if train and not counts.keys() & {"done", "finished"}:
        parser.exit(1, "error: no run of the sweep finished (every run diverged): see the runs' provenance.json\n")
    if args.command == "reproduce":
        from .book import execute_all

        execute_all(args.profile, results_dir=str(root), overrides=overrides_of(config), train=train)
    return 0


def _one_line(error: BaseException) -> str:
    """Our errors say what they are; others are named by their type."""
    from .sweep import NeedFailed

    text = " ".join(str(error).split())
    return text if isinstance(error, (ValueError, OSError, NeedFailed)) else f"{type(error).__name__}: {text}"


def _sizes(args) -> int:
    """``sizes``: the table of :func:`needle_core.embedding.embedding_sizes`, nothing allocated."""
    import torch

    from .embedding import EmbeddingError, available_memory, embedding_sizes, format_sizes
    from .models import cnn

    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
        with torch.device("meta"):  # shapes only
            if args.model.startswith("torchvision:"):
                import torchvision

                model = torchvision.models.get_model(args.model.split(":", 1)[1], num_classes=10)
            else:
                model = cnn(args.model, ch=args.width)
            table = format_sizes(embedding_sizes(model, shape), available_memory("cpu"))
    except (ValueError, EmbeddingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.model}{'' if ':' in args.model else f' (width {args.width})'} on input {shape}, float32:")
    print(table)
    return 0


def _verify(root) -> int:
    """``verify``: a summary of the store at ``root``, one line per damaged file; 1 on damage."""
    from .store import ResultStore

    if not (Path(root) / "runs").is_dir():
        print(f"error: {root} holds no result store (no runs/ folder).", file=sys.stderr)
        return 2
    report = ResultStore(root).verify()
    n = {k: len(v) for k, v in report.items()}
    print(f"store {root}: {n['runs'] + n['unchecked_runs']} finished runs ({n['runs']} checked"
          + (f", {n['unchecked_runs']}: no checksums recorded (written before integrity checks)"
             if n["unchecked_runs"] else "")
          + f"), {n['checkpoints'] + n['unchecked_checkpoints']} checkpoints ({n['checkpoints']} checked"
          + (f", {n['unchecked_checkpoints']}: no checksums recorded" if n["unchecked_checkpoints"] else "")
          + f"), {n['unfinished']} unfinished, {n['leftovers']} leftovers of killed processes "
          "(removed by the next sweep)")
    if report["problems"]:
        print(f"damaged: {n['problems']}", *report["problems"], sep="\n  ", file=sys.stderr)
        return 1
    print("no damage found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
