"""``python -m needle_core``: run sweeps and reproduce the book.

    python -m needle_core sweep --profile smoke
    python -m needle_core sweep --profile cpu --set dataset=folder:/data/cifar10-jpeg.tar.gz --set seeds=[0]
    python -m needle_core sweep --profile paper --config my.yaml --out runs/paper
    python -m needle_core reproduce --profile cpu
    python -m needle_core verify --out runs/cpu
    python -m needle_core upgrade --out runs/cpu          (once, for a store written before manifests)
    python -m needle_core rebuild-config --out runs/cpu   (a damaged config.json, from the runs' provenance)
    python -m needle_core sizes --model alexnet --width 64 --input-shape 3,32,32

Every error is one line naming the file or field and the fix (exit 2: bad input, refused
before anything is written; 1: damage or failed runs; 130: interrupted, resumable).
"""
from __future__ import annotations

import argparse
import collections
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
    """The config a store at ``root`` records (``config.json``, checked against the store's
    manifest) when it was made from the profile of ``config``: what ``reproduce``
    re-renders on a clone (the data set included)."""
    from .store import ResultStore, _parse

    store = ResultStore(root)
    path = store.root / "config.json"
    if not path.exists():
        return config
    recorded = _parse(store.root, "config.json", store.read(path))["config"]
    if recorded.get("name") != config.name:
        return config
    return make_config(config.name, {k: v for k, v in recorded.items() if k != "name"})


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's: usage, then the message; ours: one line with the fix
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m needle_core", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = sub.add_parser("sweep", help="train every run of a profile's grid that is not finished yet")
    _common(sweep)
    sweep.add_argument("--executor", default="local", choices=["local", "dask"], help="local (default) or dask")
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
    repro = sub.add_parser("reproduce", help="re-execute a profile's edition pages into book/ from what its store "
                           "holds (needle_core.book.EDITION; every notebook for a profile without one); trains "
                           "nothing unless --train; run it in the repository's root")
    _common(repro)
    repro.add_argument("--train", action="store_true", help="first train the runs the store lacks (the sweep)")
    verify = sub.add_parser("verify", help="check every file of a result store against its manifest (exit 1 on damage)")
    upgrade = sub.add_parser("upgrade", help="list in a store's manifest the files it lacks (once, for a store "
                             "written before manifests), saying what was checked and what you vouch for")
    rebuild = sub.add_parser("rebuild-config", help="rebuild a store's damaged config.json from its runs' provenance")
    for p in (verify, upgrade, rebuild):
        where = p.add_mutually_exclusive_group()
        where.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="the store runs/<profile>")
        where.add_argument("--out", help="the store's folder")
    upgrade.add_argument("--rebuild", action="store_true", help="start from an empty manifest (one that is damaged)")
    upgrade.add_argument("--dry-run", action="store_true", help="say what would be listed, write nothing")
    sizes = sub.add_parser("sizes", help="the memory each conv of a model takes once embedded (eFCN, eLCN), "
                           "computed from shapes on the meta device: nothing is allocated")
    sizes.add_argument("--model", default="vanilla",
                       help="vanilla, alexnet, or torchvision:NAME (e.g. torchvision:resnet18); default vanilla")
    sizes.add_argument("--width", type=int, default=64, help="width ch of vanilla/alexnet (default 64)")
    sizes.add_argument("--input-shape", default="3,32,32", help="one input, without the batch (default 3,32,32)")
    args = parser.parse_args(argv)
    if args.command == "sizes":
        return _sizes(args)
    from .sweep import default_root

    root = Path(args.out) if args.out else default_root(args.profile)
    try:
        if args.command == "verify":
            return _verify(root)
        if args.command == "upgrade":
            return _upgrade(root, args.rebuild, args.dry_run)
        if args.command == "rebuild-config":
            return _rebuild_config(root)
        return _main(parser, args, root)
    except KeyboardInterrupt:
        what = {"sweep": "sweep", "landscape": "landscape", "reproduce": "reproduce"}.get(args.command, args.command)
        parser.exit(130, f"interrupted: {root} is consistent (finished runs and points are kept, the others resume "
                         f"from their last checkpoint): run the same 'python -m needle_core {what} ...' command "
                         f"again to go on.\n")


def _main(parser: argparse.ArgumentParser, args, root: Path) -> int:
    from .data import BadDataset, DatasetNotFound
    from .integrity import StoreDamaged
    from .io import DiskFull
    from .sweep import NeedFailed, RunsFailed, Sweep

    def fail(code: int, error) -> None:
        parser.exit(code, f"error: {error if isinstance(error, str) else _one_line(error)}\n")

    if args.config and Path(args.config).is_dir():
        fail(2, f"--config {args.config} is a folder: give a YAML file of config fields (e.g. my.yaml).")
    try:
        overrides = parse_overrides(args.set)
        config = make_config(args.profile, overrides, args.config)
    except FileNotFoundError as err:
        fail(2, f"--config {args.config}: no such file ({err.strerror or err}): give an existing YAML file.")
    except (ValueError, OSError, UnicodeDecodeError) as err:
        fail(2, err)
    if root.exists() and not root.is_dir():
        fail(2, f"--out {root} is a file, not a folder: give a folder for the result store (created if missing).")
    if args.command == "reproduce":
        from .notebook import checkout_root

        repo = Path(__file__).resolve().parent.parent
        if checkout_root(repo) != repo or not (repo / "book").is_dir():
            fail(2, "reproduce re-renders the book of a clone of the repository, and this needle_core is installed "
                    "outside one: clone the repository and run it in its root.")
        if Path.cwd().resolve() != repo:
            fail(2, f"reproduce runs in the repository's root, where runs/ and book/ are (here: {Path.cwd()}): "
                    f"cd {repo} first.")
        if not (args.set or args.config):
            try:
                config = recorded_config(root, config)
            except (ValueError, OSError) as err:
                fail(1 if isinstance(err, StoreDamaged) else 2, err)
    if args.command == "landscape":
        return _landscape(parser, args, config, root)
    only = getattr(args, "only", [])
    executor = "local"
    failed = None
    try:
        if args.command == "sweep" and args.executor != "local":
            from . import cluster

            executor = cluster.make_executor(args.executor, args.scheduler)
        sweep = Sweep(config, root, executor, allow_dirty=getattr(args, "allow_dirty", False))
        if args.command == "sweep" and args.dry_run:
            for task in sweep.tasks(only):
                print(task.spec.run, "<-", ", ".join(task.needs) or "-")
            return 0
        train = args.command == "sweep" or (args.train and sweep.missing_data is None)
        if args.command == "reproduce" and not train:
            from .landscape import curve_finished

            tasks = sweep.tasks()
            missing = [t for t in tasks if t.spec.role != "curve" and not sweep.store.is_finished(t.spec.run)]
            curves = [t for t in tasks if t.spec.role == "curve" and not curve_finished(root, t.spec)]
            what = ", ".join(filter(None, [f"{len(missing)} runs" if missing else "",
                                           f"{len(curves)} curve tasks" if curves else ""]))
            why = (f"{sweep.missing_data}; " if sweep.missing_data is not None else "")
            if what or sweep.missing_data is not None:
                print(f"warning: {why}re-rendering the finished runs of {root} only"
                      + (f"; {what} of the config are missing (train them with: python -m needle_core "
                         f"sweep --profile {config.name} --out {root}, or reproduce --train)." if what else "."),
                      file=sys.stderr)
        try:
            if train:
                sweep.run(progress=True, only=only)
            else:
                sweep.statuses = {run: "finished" for run in sweep.store.finished_runs()}
        except RunsFailed as error:
            failed = error
    except StoreDamaged as err:
        fail(1, err)
    except (ValueError, DatasetNotFound, BadDataset) as err:
        fail(2, err)
    except DiskFull as err:
        fail(1, err)
    except OSError as err:  # the machine: a folder that cannot be written, a full disk elsewhere...
        fail(1, f"{err.filename or root}: {err.strerror or err}: check that folder (free space, permissions) and "
                f"run the same command again.")
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


def _landscape(parser, args, config: SweepConfig, root: Path) -> int:
    from . import landscape
    from .data import DatasetNotFound
    from .integrity import StoreDamaged

    def ints(flag: str, text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            parser.exit(2, f"error: {flag} {text!r}: give comma-separated whole numbers, e.g. {flag} 2,8,16.\n")
        return values

    switch_times = ints("--switch-times", args.switch_times)
    off = [t for t in switch_times if t not in config.switch_times]
    if off:
        parser.exit(2, f"error: --switch-times {args.switch_times}: {off} not in the sweep's grid "
                       f"(switch_times={config.switch_times}): a landscape is measured at a switch time the sweep "
                       "trained; choose among those.\n")
    if "fc" not in config.kinds:
        parser.exit(2, "error: the landscape measures eFCN branches, and this config has none (kinds without "
                       "'fc'): --set kinds=[fc].\n")
    seeds = ints("--seeds", args.seeds) if args.seeds else None
    if seeds is not None and set(seeds) - set(config.seeds):
        parser.exit(2, f"error: --seeds {args.seeds}: {sorted(set(seeds) - set(config.seeds))} not among the "
                       f"config's seeds {config.seeds}.\n")
    if not root.is_dir():
        parser.exit(2, f"error: {root} holds no result store: run the sweep first (python -m needle_core sweep "
                       f"--profile {config.name} --out {root}).\n")
    try:
        landscape.measure(config, root, switch_times, seeds)
        print(landscape.results(root).to_string(index=False))
    except StoreDamaged as err:
        parser.exit(1, f"error: {_one_line(err)}\n")
    except (ValueError, DatasetNotFound) as err:
        parser.exit(2, f"error: {_one_line(err)}\n")
    except OSError as err:
        parser.exit(1, f"error: {err.filename or root}: {err.strerror or err}: check that folder (free space, "
                       f"permissions) and run the same command again.\n")
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


def _verify(root: Path) -> int:
    """``verify``: a summary of the store at ``root``, one line per damaged, missing or
    unexpected file with its fix; 1 on damage, 2 when there is no store."""
    from .store import ResultStore

    if not root.is_dir() or not any((root / n).exists() for n in ("runs", "config.json", "manifest.json")):
        print(f"error: {root} holds no result store (no runs/, config.json or manifest.json): give the store's "
              "folder (--out).", file=sys.stderr)
        return 2
    report = ResultStore(root).verify()
    n = {k: len(v) for k, v in report.items()}
    print(f"store {root}: {n['files']} files checked against the manifest; {n['runs']} finished runs, "
          f"{n['checkpoints']} checkpoints here"
          + (f" ({n['checkpoints_elsewhere']} more recorded, not on this machine: checkpoints are not committed)"
             if n["checkpoints_elsewhere"] else "")
          + f", {n['landscape']} landscape tables; {n['unfinished']} unfinished runs (resumed by the next sweep), "
            f"{n['in_flight']} writes in flight or killed (redone by the next sweep), {n['leftovers']} leftovers of "
            f"killed processes (removed by the next sweep)")
    if report["not_trained"]:
        shown = ", ".join(report["not_trained"][:5]) + (", ..." if n["not_trained"] > 5 else "")
        print(f"missing: {n['not_trained']} runs of the recorded config are not in the store ({shown}): the next "
              f"sweep of that config trains them")
    if report["checkpoints"] and report["checkpoints_elsewhere"]:  # the machine that trained: some are gone
        print(f"gone: {n['checkpoints_elsewhere']} recorded checkpoints are not here although others are "
              f"({', '.join(report['checkpoints_elsewhere'][:3])}{', ...' if n['checkpoints_elsewhere'] > 3 else ''}): "
              "a branch that needs a switch checkpoint re-trains its trunk; a final.pt or resume.pt comes back only "
              "by deleting its run folder (the next sweep re-runs it)")
    if report["deleted"]:
        print(f"deleted: {n['deleted']} recorded files went with their run folder or landscape point "
              f"({', '.join(report['deleted'][:3])}{', ...' if n['deleted'] > 3 else ''}): the next sweep (or landscape "
              "command) makes them again")
    if report["landscape_unmeasured"]:
        print(f"missing: {n['landscape_unmeasured']} landscape points recorded without their table "
              f"({', '.join(report['landscape_unmeasured'][:3])}): the landscape command measures them again")
    if report["problems"]:
        print(f"damaged: {n['problems']}", *report["problems"], sep="\n  ", file=sys.stderr)
        return 1
    print("no damage found")
    return 0


def _upgrade(root: Path, rebuild: bool, dry_run: bool) -> int:
    """``upgrade``: list what a store's manifest lacks, saying what was checked and vouched for."""
    from .integrity import StoreDamaged
    from .lock import FileLock
    from .store import upgrade

    if not root.is_dir():
        print(f"error: {root} is not a folder: give the store's folder (--out).", file=sys.stderr)
        return 2
    with FileLock(root / ".lock") as lock:
        try:
            alone = lock.acquire(exclusive=True, wait=False)
        except OSError as err:
            print(f"error: {root}: {err.strerror}: the store cannot be written here.", file=sys.stderr)
            return 2
        if not alone:
            print(f"error: a sweep writes {root} now ({lock.holder()}): upgrade it once that sweep has ended.",
                  file=sys.stderr)
            return 2
        try:
            out = upgrade(root, rebuild=rebuild, dry_run=dry_run)
        except StoreDamaged as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    verb = "would list" if dry_run else "listed"
    print(f"store {root}: {len(out['kept'])} files were listed already and match; {verb} "
          f"{len(out['checked']) + len(out['vouched'])} more")
    if out["checked"]:
        print(f"  checked: {len(out['checked'])} files match the checksums recorded before (spec.json and "
              "metrics.parquet against their run's provenance, checkpoints against their .sha256 sidecars)")
    if out["vouched"]:
        kinds = collections.Counter(_kind_word(name) for name in out["vouched"])
        print(f"  vouched for: {len(out['vouched'])} files had no earlier checksum and are listed as they are now "
              f"(each parses as its kind; that their content is what was written is your word): "
              + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if out.get("dropped"):
        print(f"  dropped: {len(out['dropped'])} entries of files deleted with their run folder or landscape point")
    if out["sidecars"]:
        print(f"  removed: {len(out['sidecars'])} old .sha256 sidecars (their digests are in the manifest now)")
    if out["unexpected"]:
        print(f"  not listed: {len(out['unexpected'])} files of no kind a reader uses (verify names them): "
              + ", ".join(out["unexpected"][:5]), file=sys.stderr)
    if out["refused"]:
        print(f"refused: {len(out['refused'])} damaged files, not listed", *out["refused"], sep="\n  ",
              file=sys.stderr)
        return 1
    return 0


def _kind_word(name: str) -> str:
    from .store import _kind

    return _kind(name) or "other"


def _rebuild_config(root: Path) -> int:
    """``rebuild-config``: config.json from the runs' provenance."""
    from .integrity import StoreDamaged
    from .lock import FileLock
    from .store import ResultStore, rebuild_config

    with FileLock(root / ".lock") as lock:
        try:
            if not root.is_dir() or not lock.acquire(exclusive=True, wait=False):
                print(f"error: {root} is not a store, or a sweep writes it now: try again once it has ended.",
                      file=sys.stderr)
                return 2
            record = rebuild_config(root)
        except (StoreDamaged, ValueError) as err:
            print(f"error: {_one_line(err)}", file=sys.stderr)
            return 1
    print(f"{root / 'config.json'}: rebuilt from the provenance of {len(ResultStore(root).finished_runs())} "
          f"runs (config digest {record['digest']}, data set {record['dataset_identity']}); check it with: "
          f"python -m needle_core verify --out {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
