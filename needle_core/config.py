"""Sweep configurations and the named profiles, defined in one place.

A :class:`SweepConfig` is the grid architecture × width × n_train × seed × switch time ×
kind plus the optimiser settings.  Profiles are named configs; any field can be
overridden from the command line (``--set epochs=20``) or a YAML file.  ``validate``
catches every config error before any training starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml


def log_epochs(epochs: int, points: int = 20) -> list[int]:
    """Evaluation epochs of the authors' code: ``{0} ∪ unique(int(logspace(0, log10(E), 20)))``.

    For ``E = 100``: 0 1 2 3 4 5 6 8 11 14 18 23 29 37 48 61 78 100 (paper.md §4).
    """
    if epochs < 1:
        return [0]
    grid = np.unique(np.logspace(0, np.log10(epochs), points).astype(int))
    return sorted({0, *map(int, grid), epochs})


@dataclass
class SweepConfig:
    """Everything a sweep needs; the defaults are the paper's (paper.md §4)."""

    name: str = "custom"
    dataset: str = "cifar10"  # cifar10 | cifar100 | synthetic | folder:/path (ImageFolder or .tar.gz)
    data_root: str = "data"
    archs: list[str] = field(default_factory=lambda: ["vanilla"])
    widths: list[int] = field(default_factory=lambda: [64])
    n_trains: list[int | None] = field(default_factory=lambda: [None])  # None: the whole training set
    n_test: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 100
    switch_times: list[int] = field(default_factory=lambda: log_epochs(100)[:-1])
    kinds: list[str] = field(default_factory=lambda: ["fc", "lc"])
    baselines: list[str] = field(default_factory=lambda: ["fcn"])  # fcn (FCN from scratch), lcn (eLCN from scratch)
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 250
    lr_after: float | None = None  # learning rate after the switch; None keeps lr
    eval_points: int = 20  # log-spaced evaluation epochs (plus every switch time and the read-out window)
    readout: float = 0.2  # pre-registered read-out: the mean over the evaluations in the last 20% of the epochs
    eval_batch_size: int = 1000
    deviation: bool = True  # measure δ, δ_loc, δ_ws at every evaluation of embedded nets
    save_final: bool = True  # keep each run's final weights (landscape figure)
    checkpoint_minutes: float = 5.0  # resume checkpoints of long runs, at most this far apart
    divergence_loss: float = 1e3  # a training loss above this (or NaN) stops the run as diverged
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads for torch; 0 leaves torch's default (all cores)
    # Fields added later (issue 17): at their defaults they leave a config's digest as it was.
    fc_epochs: int | None = None  # epochs every other network trains from its start (a branch from t_w, an FCN
    #                               from 0: the authors' code restarts the epoch counter); None: to `epochs`
    train_eval_subset: int | None = None  # train metrics on this many fixed, class-balanced training images; None: all
    readout_every: int = 1  # evaluate every k-th epoch of the read-out window (counted back from a run's last)
    precision: str = "fp32"  # fp32 | bf16 (autocast: products in bfloat16; weights, their gradients' storage and
    #                          SGD in fp32) for the runs; landscape paths always train and read in fp32.  Published
    #                          stores train in fp32 only (bf16 changes every trained number: a different experiment)

    # Claim 6 by trained curves (issue 18, needle_core.landscape.curve_tasks): the t_w whose eFCN → FCN curves,
    # with their controls, are tasks of the sweep's graph ([]: none); images a curve trains on and its barrier
    # is read on (shared by both endpoints' training sets), test images along it, steps between convergence
    # checks and the budget.  Not in the digest: they change no run's numbers (each curve records them).
    landscape_switch_times: list[int] = field(default_factory=list)
    landscape_n_train: int | None = 1000
    landscape_n_test: int | None = 2000
    landscape_check_steps: int = 100
    landscape_max_steps: int = 2000
    landscape_seeds: list[int] | None = None  # the seeds whose curves are tasks (None: every seed); a store that
    #                                           grows by seeds keeps its curves' control pairs (issue 17 amendment)

    def span(self, role: str, switch_time: int | None = None) -> tuple[int, int]:
        """``(first, last)`` epoch of a run of ``role``, counted from the CNN's start: a branch
        (eFCN, eLCN, controlled CNN) starts at its switch time, the others at 0; the trunk
        ends at ``epochs``, every other run after ``fc_epochs`` of its own (or at ``epochs``)."""
        first = switch_time if role in ("efcn", "elcn", "cnn_control") else 0
        if self.fc_epochs is None or role == "cnn":
            return first, self.epochs
        return first, first + self.fc_epochs

    def window(self, first: int, last: int) -> list[int]:
        """The read-out epochs of a run spanning ``first`` to ``last``: every ``readout_every``-th
        epoch, counted back from ``last``, after the first ``1 - readout`` of its own budget."""
        start = first + math.floor((1 - self.readout) * (last - first) + 1e-9) + 1
        return [e for e in range(min(start, last), last + 1) if (last - e) % self.readout_every == 0]

    def run_eval_epochs(self, role: str, switch_time: int | None = None) -> list[int]:
        """The epochs a run of ``role`` is evaluated at: with ``fc_epochs``, ``eval_points``
        log-spaced over its own span plus its read-out window (and a trunk's switch times);
        else the sweep's common :attr:`eval_epochs`."""
        if self.fc_epochs is None or role == "cnn":
            return self.eval_epochs
        first, last = self.span(role, switch_time)
        return sorted({first + e for e in log_epochs(last - first, self.eval_points)} | set(self.window(first, last)))

    def run_readout_epochs(self, role: str, switch_time: int | None = None) -> list[int]:
        """The read-out epochs of a run of ``role`` (the pre-registered window of its own budget)."""
        return self.window(*self.span(role, switch_time))

    @property
    def readout_epochs(self) -> list[int]:
        """The epochs whose evaluations make the primary read-out: every epoch ``e`` with
        ``e > (1 - readout) * epochs`` (at least the last).  Fixed before any result is seen:
        at lr 0.1 the test accuracy oscillates by several points from one epoch to the next,
        so a single last epoch is mostly noise."""
        return self.window(0, self.epochs)

    @property
    def eval_epochs(self) -> list[int]:
        return sorted(set(log_epochs(self.epochs, self.eval_points)) | set(self.switch_times)
                      | set(self.readout_epochs))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of exactly what changes a run's numbers.

        Left out: names and places (``name``, ``data_root``, ``device``: a store's runs may come
        from several machines, each recorded in its provenance), how often resume points are
        written, and the grid (``archs``, ``widths``, ``n_trains``, ``seeds``, ``kinds``,
        ``baselines``: a run's own spec says where it sits, so a store can grow by seeds).
        In: everything else, with ``switch_times`` as a set (they set the evaluation epochs
        and the trunks' checkpoints), ``threads`` (CPU results depend on it) and the data set
        by content (:func:`needle_core.data.identity`), not by the path it was read from.
        """
        from .data import identity

        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_DIGEST
             and not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
        d["switch_times"] = sorted(set(d["switch_times"]))
        d["dataset"] = identity(self.dataset)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


#: Config fields that do not change any run's numbers (see :meth:`SweepConfig.digest`).
_NOT_IN_DIGEST = ("name", "data_root", "device", "checkpoint_minutes",
                  "archs", "widths", "n_trains", "seeds", "kinds", "baselines",
                  "landscape_switch_times", "landscape_n_train", "landscape_n_test", "landscape_check_steps",
                  "landscape_max_steps", "landscape_seeds")


#: Fields added after stores were published, with their defaults: at the default they stay out
#: of the digest (and a store's recorded config may lack them), so older stores keep theirs.
_LATER_FIELDS = {"fc_epochs": None, "train_eval_subset": None, "readout_every": 1, "precision": "fp32"}


def recorded(record: dict, key: str):
    """A field of a store's recorded config, with the default of a field added later."""
    return record.get(key, _LATER_FIELDS.get(key))


#: The training precisions (:func:`needle_core.train.autocast`).
PRECISIONS = ("fp32", "bf16")

#: Seeds are 0 ... 2**31 - 1 (what every RNG accepts; torch's take ``seed * 1_000_003 + epoch``).
SEED_MAX = 2**31 - 1

_FIELD_TYPES = {f.name: f.type.replace(" ", "") for f in dataclasses.fields(SweepConfig)}

_PAPER_SWITCH = log_epochs(100)[:-1]  # 0 ... 78: every evaluation epoch but the last

PROFILES: dict[str, dict] = {
    # Synthetic data, CPU, the whole sweep in well under a minute: tests and notebook defaults.
    # Batch 50 so that the CNN learns in 60 steps (35% vs the FCN's 12% at epoch 6, seed 0).
    # One thread: CPU results depend on the thread count, and the notebooks check smoke numbers.
    "smoke": dict(dataset="synthetic", archs=["vanilla"], widths=[4], n_trains=[500], n_test=500, seeds=[0, 1],
                  epochs=6, switch_times=[0, 2, 4], batch_size=50, eval_points=6, device="cpu", threads=1),
    # The CPU evidence campaign (issue 9; its rules: book/preregistration.md): CIFAR-10, 10,000
    # class-balanced training images, the whole test set, VanillaCNN at width 32 (64 costs 2.6x
    # per eFCN epoch), 5 seeds, one thread.  Sized from the pilot (book/intro.md): the trunk's
    # test accuracy levels off by epoch ~16 of 20 while its train accuracy still climbs slowly;
    # an eFCN epoch costs ~25 s on one core and an evaluation (20,000 images) as much again.
    # eLCN branches are dropped for the budget (29.4 s an epoch, about 5 core-hours more for 5
    # seeds): the eLCN is left to the paper profile.
    "cpu": dict(dataset="cifar10", archs=["vanilla"], widths=[32], n_trains=[10000], n_test=None,
                seeds=[0, 1, 2, 3, 4], epochs=20, switch_times=[0, 1, 2, 4, 8, 16], kinds=["fc"],
                baselines=["fcn"], batch_size=250, eval_points=6, device="cpu", threads=1),
    # Its second arm: the learning rate lowered tenfold at the switch, for the eFCN and for the
    # controlled CNN continued from the same checkpoint (paper.md §8), 3 seeds, 3 switch times.
    "cpu-lr": dict(dataset="cifar10", archs=["vanilla"], widths=[32], n_trains=[10000], n_test=None,
                   seeds=[0, 1, 2], epochs=20, switch_times=[2, 8, 16], kinds=["fc"], baselines=[],
                   lr_after=0.01, batch_size=250, eval_points=6, device="cpu", threads=1),
    # The converged edition (issue 17; its rules: book/preregistration.md, second part): every
    # network trained until its training accuracy flattens. CIFAR-10, 5,000 class-balanced
    # images, VanillaCNN w32, the trunk 200 epochs (converged, train accuracy >= 0.99, before the
    # last switch time 151 in the pilot), every other network 50 epochs of its own. Arm 1 is the
    # paper's protocol (lr 0.1), 4 switch times (cut for the budget); 3 registered seeds, and seeds 3-4
    # added by a dated amendment (book/preregistration.md) whose 5-seed reading is shown beside them.
    "converged": dict(dataset="cifar10", archs=["vanilla"], widths=[32], n_trains=[5000], n_test=None,
                      seeds=[0, 1, 2, 3, 4], epochs=200, fc_epochs=50, switch_times=[0, 9, 49, 151], kinds=["fc"],
                      baselines=["fcn"], lr=0.1, batch_size=250, eval_points=8, readout_every=2,
                      train_eval_subset=1000, device="cpu", threads=1,
                      # claim 6 (book/preregistration.md): two seeds share about 500 of their images; its
                      # curves stay on the registered seeds 0-2 (seeds 3-4: the amendment of claims 2-5)
                      landscape_switch_times=[9, 49, 151], landscape_n_train=300, landscape_seeds=[0, 1, 2]),
    # Its second arm: one lower constant lr (0.05) for every network, a deviation from the paper.
    # Not a stable arm: no lr of the pre-declared grid (0.1, 0.05, 0.02) passed the pilot's
    # stability rule (book/preregistration.md, pilot outcome); 5 seeds, 7 switch times of the
    # paper's log grid.  No trained curves: claim 6 is decided on arm 1, and arm 2's 40 curve
    # tasks (up to ~27 core-hours) were dropped before any curve was measured (pre-registration).
    "converged-low-lr": dict(dataset="cifar10", archs=["vanilla"], widths=[32], n_trains=[5000], n_test=None,
                             seeds=[0, 1, 2, 3, 4], epochs=200, fc_epochs=50,
                             switch_times=[0, 3, 9, 21, 49, 114, 151], kinds=["fc"], baselines=["fcn"], lr=0.05,
                             batch_size=250, eval_points=8, readout_every=2, train_eval_subset=1000, device="cpu",
                             threads=1),
    # The paper: VanillaCNN ch=64 and AlexNet, all of CIFAR-10, 100 epochs, the full switch grid, GPU.
    "paper": dict(dataset="cifar10", archs=["vanilla", "alexnet"], widths=[64], n_trains=[None], seeds=[0, 1, 2],
                  epochs=100, switch_times=_PAPER_SWITCH, device="cuda"),
}


def _has_type(value, annotation: str) -> bool:
    """Whether ``value`` fits a field annotation such as ``"list[int | None]"`` (bool is not int)."""
    t = annotation.replace(" ", "")
    if t.startswith("list[") and t.endswith("]|None"):  # an optional list
        return value is None or _has_type(value, t[:-len("|None")])
    if t.startswith("list[") and t.endswith("]"):
        return isinstance(value, list) and all(_has_type(v, t[5:-1]) for v in value)
    scalar = {"None": type(None), "str": str, "bool": bool, "int": int, "float": (int, float)}
    return any(alt in scalar and isinstance(value, scalar[alt]) and (alt == "bool" or not isinstance(value, bool))
               for alt in t.split("|"))


def _coerce(name: str, value):
    """Parse a command-line value with YAML and bring it to the field's type where that is
    lossless (``[0]`` for a list field given ``0``, ``0.1`` for a float given ``"1e-1"``);
    :func:`validate` then checks the type."""
    annotation = _FIELD_TYPES[name]
    if isinstance(value, str) and annotation != "str":
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(f"{name}={value!r} is not valid YAML ({_yaml_problem(error)}).") from None
    if annotation.startswith("list[") and not isinstance(value, list) \
            and not (value is None and annotation.endswith("|None")):  # null of an optional list stays null
        value = [value]
    if "float" in annotation.split("|") and not isinstance(value, bool):
        if isinstance(value, int):
            value = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
    return value


def make_config(profile: str = "smoke", overrides: dict | None = None, yaml_file: str | Path | None = None) -> SweepConfig:
    """The config of a named profile, then the YAML file's fields, then ``overrides``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {sorted(PROFILES)}.")
    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    values = dict(PROFILES[profile], name=profile)
    layers = [(f" in {yaml_file}", _read_yaml(Path(yaml_file)))] if yaml_file else []
    for where, layer in layers + [("", overrides or {})]:
        for key, value in layer.items():
            if key not in fields:
                raise ValueError(f"unknown config field {key!r}{where}; valid fields: {', '.join(sorted(fields))}.")
            values[key] = _coerce(key, value)
    config = SweepConfig(**values)
    validate(config)
    return config


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what a YAML parse error is, in one line ("line 3, column 7: ...")."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + str(getattr(error, "problem", None) or error).replace("\n", " ")


def _read_yaml(path: Path) -> dict:
    """The config fields of a YAML file, or a ValueError saying where it is malformed."""
    try:
        layer = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML ({_yaml_problem(error)}).") from None
    if layer is None:
        return {}
    if not isinstance(layer, dict):
        raise ValueError(f"{path} holds a YAML {type(layer).__name__}: give a mapping of config fields, "
                         f"one per line (e.g. 'epochs: 20').")
    return layer


def parse_overrides(pairs: list[str]) -> dict:
    """``["epochs=20", "seeds=[0,1]"]`` -> ``{"epochs": "20", "seeds": "[0,1]"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"override {pair!r} is not KEY=VALUE (e.g. --set epochs=20).")
        out[key.strip()] = value
    return out


def validate(config: SweepConfig) -> None:
    """Raise ValueError naming the field and the fix for anything that would fail later."""
    from .models import ARCHITECTURES, cnn  # models import torch: keep config importable cheaply

    def fail(msg):
        raise ValueError(f"invalid sweep config: {msg}")

    defaults = SweepConfig()
    for f in dataclasses.fields(config):  # before any comparison below can raise a TypeError
        value = getattr(config, f.name)
        if not _has_type(value, _FIELD_TYPES[f.name]):
            fail(f"{f.name}={value!r} is not of type {f.type}: give a value like the default "
                 f"({f.name}={getattr(defaults, f.name)!r}).")
    for f in dataclasses.fields(config):  # nan and inf pass every comparison below, or fail it late
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"{f.name}={value}: give a finite number (default {getattr(defaults, f.name)!r}).")
    for name in ("archs", "widths", "n_trains", "seeds", "switch_times", "kinds", "baselines"):
        values = getattr(config, name)
        if len(set(values)) != len(values):  # the same run would be planned twice
            fail(f"{name}={values} repeats a value: give each once.")
    if config.epochs < 1:
        fail(f"epochs={config.epochs}: train for at least 1 epoch.")
    for t in config.switch_times:
        if not isinstance(t, int) or not 0 <= t < config.epochs:
            fail(f"switch time {t} is outside [0, epochs={config.epochs}): a branch must train after its switch; "
                 f"lower it or raise epochs.")
    for arch in config.archs:
        if arch not in ARCHITECTURES:
            fail(f"unknown architecture {arch!r}: choose from {sorted(ARCHITECTURES)}.")
    for kind in config.kinds:
        if kind not in ("fc", "lc"):
            fail(f"kind {kind!r}: use 'fc' (eFCN) and/or 'lc' (eLCN).")
    for b in config.baselines:
        if b not in ("fcn", "lcn"):
            fail(f"baseline {b!r}: use 'fcn' (FCN from scratch) and/or 'lcn' (eLCN from scratch).")
    for w in config.widths:
        if not isinstance(w, int) or w < 1:
            fail(f"width {w!r}: use a positive integer (the paper uses 64).")
    for n in config.n_trains:
        if n is not None and (not isinstance(n, int) or n < 1):
            fail(f"n_train {n!r}: use a positive integer or null for the whole training set.")
    classes = {"cifar10": 10, "cifar100": 100, "synthetic": 10}.get(config.dataset)  # synthetic: data.SYNTHETIC_CLASSES
    for what, n in [("n_train", n) for n in config.n_trains] + [("n_test", config.n_test)]:
        if classes and n is not None and n % classes:
            fail(f"{what}={n}: subsets are class-balanced, use a multiple of {classes} (the classes of {config.dataset}).")
    if config.n_test is not None and config.n_test < 1:
        fail(f"n_test={config.n_test}: use a positive integer or null for the whole test set.")
    if not config.seeds:
        fail("seeds is empty: give at least one seed.")
    from .train import epoch_seed

    for seed in config.seeds:  # torch generators take (seed, epoch) folded into one int64
        if not 0 <= seed <= SEED_MAX or epoch_seed(seed, config.epochs) >= 2**63:
            fail(f"seed {seed}: use an integer in [0, {SEED_MAX}].")
    if config.lr <= 0 or (config.lr_after is not None and config.lr_after <= 0):
        fail("learning rates must be positive.")
    if not 0 <= config.momentum < 1:
        fail(f"momentum={config.momentum}: use a value in [0, 1) (the paper's SGD has 0).")
    if config.weight_decay < 0:
        fail(f"weight_decay={config.weight_decay}: use a value >= 0 (the paper's SGD has 0).")
    if config.divergence_loss <= 0:
        fail(f"divergence_loss={config.divergence_loss}: a training loss above it stops a run; use a positive "
             f"number (default {defaults.divergence_loss:g}).")
    if config.checkpoint_minutes < 0:
        fail(f"checkpoint_minutes={config.checkpoint_minutes}: use a value >= 0 (0: a resume point every epoch).")
    if config.threads < 0:
        fail(f"threads={config.threads}: use a positive count, or 0 for torch's default (all cores).")
    for name in ("batch_size", "eval_batch_size", "eval_points"):
        if getattr(config, name) < 1:
            fail(f"{name}={getattr(config, name)}: use a positive integer (default {getattr(defaults, name)}).")
    if config.fc_epochs is not None and config.fc_epochs < 1:
        fail(f"fc_epochs={config.fc_epochs}: use a positive number of epochs, or null to train to epochs.")
    if config.readout_every < 1:
        fail(f"readout_every={config.readout_every}: use a positive integer (1: every epoch of the read-out window).")
    if config.train_eval_subset is not None and (config.train_eval_subset < 1 or (
            classes and config.train_eval_subset % classes)):
        fail(f"train_eval_subset={config.train_eval_subset}: use a positive multiple of the classes "
             f"({classes or 'of the data set'}), or null for every training image.")
    if config.precision not in PRECISIONS:
        fail(f"precision={config.precision!r}: use fp32 (the paper's, and the only one a published store takes) "
             f"or bf16 (autocast, for exploring at scale).")
    if not 0 <= config.readout < 1:
        fail(f"readout={config.readout}: the read-out window is a fraction of the epochs in [0, 1) (0: the last epoch).")
    if config.landscape_switch_times:
        if len(set(config.landscape_switch_times)) != len(config.landscape_switch_times):
            fail(f"landscape_switch_times={config.landscape_switch_times} repeats a value: give each once.")
        extra = sorted(set(config.landscape_switch_times) - set(config.switch_times))
        if extra:
            fail(f"landscape_switch_times {extra} are not switch times of the sweep ({config.switch_times}).")
        if "fc" not in config.kinds or "fcn" not in config.baselines:
            fail("landscape_switch_times needs eFCN branches (kinds with 'fc') and FCNs from scratch (baselines "
                 "with 'fcn'): they are the curves' endpoints.")
        if not config.save_final:
            fail("landscape_switch_times needs save_final=True: the curves join the runs' final weights.")
    if config.landscape_seeds is not None:
        seeds = config.landscape_seeds
        if len(set(seeds)) != len(seeds):
            fail(f"landscape_seeds={seeds} repeats a value: give each once.")
        extra = sorted(set(seeds) - set(config.seeds))
        if extra or not seeds:
            fail(f"landscape_seeds={seeds}: give seeds of the sweep ({config.seeds}), or null for every seed"
                 + (f"; {extra} are not among them (to train a slice of the seeds, keep seeds and use "
                    f"--only '*-s3/*')." if extra else "."))
    for name in ("landscape_n_train", "landscape_n_test"):
        n = getattr(config, name)
        if n is not None and (n < 1 or (classes and n % classes)):
            fail(f"{name}={n}: use a positive multiple of the classes ({classes or 'of the data set'}) or null.")
    for name in ("landscape_check_steps", "landscape_max_steps"):
        if getattr(config, name) < 1:
            fail(f"{name}={getattr(config, name)}: use a positive integer (default {getattr(defaults, name)}).")
    if config.device not in ("auto", "cpu", "cuda") and not config.device.startswith("cuda:"):
        fail(f"device {config.device!r}: use auto, cpu or cuda.")
    if not (config.dataset in ("cifar10", "cifar100", "synthetic") or config.dataset.startswith("folder:")):
        fail(f"dataset {config.dataset!r}: use cifar10, cifar100, synthetic or folder:/path/to/imagefolder.")
    import torch

    for arch in config.archs:  # a width that breaks the shapes fails here, not mid-sweep
        for w in config.widths:
            try:
                with torch.device("meta"):
                    model = cnn(arch, ch=w)
                model.to_empty(device="cpu")(torch.zeros(1, 3, 32, 32))
            except Exception as err:
                fail(f"{arch} with width {w} does not run on 3x32x32 inputs ({err}).")


def shared_overrides(overrides: dict) -> dict:
    """The overrides of one profile that a sweep of another profile shares with it: the data
    set (the campaign's two arms train on one); the other fields belong to each profile."""
    return {k: v for k, v in overrides.items() if k == "dataset"}


def overrides_of(config: SweepConfig) -> dict:
    """The fields of ``config`` that differ from its profile (``config.name``): what a
    notebook needs to rebuild exactly this config with :func:`make_config`."""
    base = SweepConfig(**PROFILES[config.name], name=config.name).to_dict() if config.name in PROFILES else {}
    return {k: v for k, v in config.to_dict().items() if k != "name" and base.get(k, object()) != v}
