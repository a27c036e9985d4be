"""The datasets of the training protocol (paper.md §4), held whole as tensors on the
training device.

Every dataset is a :class:`Data`: ``x`` ``(N, C, H, W)`` float32, normalised per channel
(``(pixel / 255 - mean) / std``), and integer labels ``(N,)``.  Training draws minibatches as
index tensors from :func:`batches` and indexes the device-resident tensors with them, so no
DataLoader runs per step.

Sources (the ``name`` of :func:`load`):

* ``"cifar10"``, ``"cifar100"``: torchvision's files under ``root`` (downloaded once if absent);
* ``"folder:/path"``: an ImageFolder tree with ``train/<class>/*`` and ``test/<class>/*``, or a
  ``.tar.gz`` of one (extracted once under ``root/extracted``);
* ``"synthetic"``: :func:`synthetic`, generated offline, with structure a CNN exploits and an
  FCN does not.

Images are decoded once and cached as uint8 under ``root/cache/<key>.pt``; subsets are
class-balanced and chosen by a seeded generator (the authors took the first N images, with
unbalanced classes; paper.md §4).
"""
from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .io import atomic_write_bytes, disk_full, leftovers, torch_bytes
from .lock import FileLock

CIFAR10_NORMALISATION = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
"""``(mean, std)`` per RGB channel of CIFAR-10 pixels in [0, 1] (paper.md §4)."""
CIFAR100_NORMALISATION = ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))
"""``(mean, std)`` per RGB channel of CIFAR-100 pixels in [0, 1] (the usual constants)."""

SYNTHETIC_CLASSES = 10
SYNTHETIC_SHAPE = (3, 32, 32)

# Threads for Pillow decoding: Pillow releases the GIL while it decodes, so threads give real
# parallelism without the start-up cost (and pickling) of processes.
_DECODE_THREADS = min(4, os.cpu_count() or 1)


class DatasetNotFound(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to provide it."""


class BadDataset(ValueError):
    """A data set is here but cannot be used as it is (a damaged archive, a wrong layout,
    images of mixed or unusable sizes, too few images); the message names it and the fix."""


@dataclass
class Data:
    """A whole dataset as tensors on one device.

    ``x_train`` ``(N, C, H, W)`` float32, normalised per channel with ``mean``/``std``
    (``(pixel / 255 - mean) / std``); ``y_train`` ``(N,)`` int64 in ``[0, num_classes)``;
    likewise ``x_test``, ``y_test``.  ``classes[k]`` names label ``k``.  ``mean`` and ``std``
    (per channel, for pixels in [0, 1]) undo the normalisation, e.g. to show images.
    """

    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: list[str] = field(repr=False)
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> "Data":
        """The same dataset with its four tensors on ``device`` (``self`` is left as it was)."""
        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_test=self.x_test.to(device), y_test=self.y_test.to(device))

    def __repr__(self) -> str:
        return (f"Data({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes}, device={self.device})")


# --------------------------------------------------------------------------- public API

def load(name: str, root: str | Path, n_train: int | None = None, n_test: int | None = None, seed: int = 0,
         device: str | torch.device = "cpu",
         normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> Data:
    """The dataset ``name`` as a :class:`Data` on ``device``.

    ``name``: ``"cifar10"``, ``"cifar100"`` (torchvision's files in ``root``, downloaded there
    if absent), ``"folder:/dir"`` (ImageFolder tree with ``train/`` and ``test/``),
    ``"folder:/file.tar.gz"`` (a tar.gz of such a tree, extracted once into
    ``root/extracted/<stem>-<content hash>``) or ``"synthetic"`` (see :func:`synthetic`).

    ``root``: folder for downloads, extractions and the decoded cache ``root/cache/<key>.pt``.

    ``n_train``, ``n_test``: class-balanced subset sizes (``n / num_classes`` images of every
    class, chosen by a ``torch.Generator`` seeded with ``seed``); ``None`` takes the whole
    split (for ``"synthetic"``: 2,000 and 1,000 images).  With one seed, a smaller subset is
    contained in a larger one.

    ``normalisation``: ``(mean, std)`` per channel for pixels in [0, 1]; default the CIFAR-10
    constants of paper.md §4, CIFAR-100's own for ``"cifar100"``.  Not accepted for
    ``"synthetic"``, which is generated already standardised.
    """
    root = Path(root)
    if name == "synthetic":
        if normalisation is not None:
            raise ValueError("'synthetic' is generated already standardised: pass no normalisation.")
        return synthetic(2000 if n_train is None else n_train, 1000 if n_test is None else n_test,
                         seed=seed, device=device)
    if name in ("cifar10", "cifar100"):
        raw = _in_folder(root, lambda: _cached(root, name, lambda: _read_torchvision(name, root)))
        default = CIFAR10_NORMALISATION if name == "cifar10" else CIFAR100_NORMALISATION
    elif name.startswith("folder:"):
        source = Path(name[len("folder:"):]).expanduser().resolve()
        raw = _in_folder(root, lambda: _load_folder(source, root))
        default = CIFAR10_NORMALISATION
    else:
        raise ValueError(f"unknown dataset {name!r}: use 'cifar10', 'cifar100', 'synthetic', "
                         "'folder:/path/to/dir' or 'folder:/path/to/archive.tar.gz'.")
    mean, std = normalisation or default
    num_classes = len(raw["classes"])
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if n is not None:
            # A fresh generator per split: the training subset of a seed does not depend on n_test.
            index = balanced_subset(y, n, num_classes, torch.Generator().manual_seed(seed), what=f"n_{split}")
            x, y = x[index], y[index]
        # Subset and move as uint8 (4× less to copy), convert on the device.
        splits[split] = (normalise(x.to(device), mean, std), y.to(device))
    return Data(*splits["train"], *splits["test"], classes=list(raw["classes"]), name=name,
                mean=tuple(mean), std=tuple(std))


def check(name: str, root: str | Path, n_trains: list, n_test: int | None) -> tuple[int, int, int]:
    """Read the data set ``name`` (decoded and cached under ``root`` as :func:`load` does)
    and check that every training subset size of ``n_trains`` and ``n_test`` exists in it,
    before a sweep writes anything.  Returns the images' shape ``(C, H, W)``; raises
    :class:`BadDataset` or :class:`DatasetNotFound` naming the data set and the fix."""
    root = Path(root)
    if name == "synthetic":
        return SYNTHETIC_SHAPE
    if name in ("cifar10", "cifar100"):
        raw = _in_folder(root, lambda: _cached(root, name, lambda: _read_torchvision(name, root)))
    elif name.startswith("folder:"):
        source = folder_source(name)
        raw = _in_folder(root, lambda: _load_folder(source, root))
    else:
        raise ValueError(f"unknown dataset {name!r}: use 'cifar10', 'cifar100', 'synthetic', "
                         "'folder:/path/to/dir' or 'folder:/path/to/archive.tar.gz'.")
    classes = len(raw["classes"])
    for split, sizes, field_name in (("train", n_trains, "n_trains"), ("test", [n_test], "n_test")):
        counts = torch.bincount(raw[f"y_{split}"], minlength=classes)
        available = classes * int(counts.min()) if len(counts) else 0
        for n in sizes:
            if n is not None and (n <= 0 or n % classes or n > available):
                raise BadDataset(f"{field_name}: {n} images of {name} is not a class-balanced subset of its {split} "
                                 f"split ({len(raw[f'y_{split}'])} images, {int(counts.min()) if len(counts) else 0} "
                                 f"in the rarest of {classes} classes): use a multiple of {classes} of at most "
                                 f"{available} (--set {field_name}=...), or null for the whole split.")
    return tuple(raw["x_train"].shape[1:])


def synthetic(n_train: int = 2000, n_test: int = 1000, seed: int = 0, pattern_size: int = 6, cell: int = 3,
              contrast: float = 6.0, device: str | torch.device = "cpu") -> Data:
    """Needles in haystacks: ``3×32×32`` images of 10 classes, class-balanced, made in well
    under a second (no files, no download).

    Class ``k`` is one fixed colour pattern of ``pattern_size × pattern_size`` pixels, a grid
    of ``cell × cell`` blocks of random colours (the same patterns for every seed), added at a
    uniformly random position to white Gaussian noise of unit variance.  Every channel of
    every pattern has zero mean and root-mean-square ``contrast`` (in units of the noise's
    standard deviation), so neither an image's mean colour nor its energy tells the class:
    only a detector of the pattern's shape does, and it must work at every position.  A CNN
    shares its detectors across positions; an FCN must learn them at each of the
    ``(32 - pattern_size + 1)²`` positions, and generalises far worse.  With the defaults and
    paper.md §4's training (SGD, lr 0.1, batch 250) on 2,000 images, ``vanilla_cnn(ch=16)``
    reaches about 80 % test accuracy within 10 epochs (spiky: lr 0.1 makes single epochs dip)
    while its FCN (:func:`needle_core.fcn`) stays near chance, 10-14 %.

    ``seed`` draws positions, noise and the order of the images; train and test come from
    two generators (seeded ``2 * seed`` and ``2 * seed + 1``), so the test set does not
    depend on ``n_train``.  The pixels are generated standardised (mean 0, std ≈ 1 over the
    dataset), so ``mean``/``std`` of the result are 0 and 1 and no normalisation applies.
    """
    c, h, w = SYNTHETIC_SHAPE
    k = SYNTHETIC_CLASSES
    if not 1 <= pattern_size <= min(h, w) or pattern_size % cell:
        raise ValueError(f"pattern_size must be in [1, {min(h, w)}] and a multiple of cell={cell}, "
                         f"got {pattern_size}.")
    grid = pattern_size // cell
    patterns = torch.randn(k, c, grid, grid, generator=torch.Generator().manual_seed(1234))
    patterns = patterns.repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    patterns -= patterns.mean(dim=(2, 3), keepdim=True)
    patterns *= contrast * pattern_size / patterns.norm(dim=(2, 3), keepdim=True)
    # Dividing by the images' RMS, sqrt(1 + contrast² · pattern area / image area), puts the
    # inputs on the scale of normalised CIFAR ones, so the same learning rate suits both.
    scale = (1 + contrast ** 2 * pattern_size ** 2 / (h * w)) ** 0.5

    def draw(n: int, what: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if n <= 0 or n % k:
            raise ValueError(f"{what}={n}: must be a positive multiple of {k} (the number of classes).")
        y = torch.arange(k).repeat_interleave(n // k)[torch.randperm(n, generator=generator)]
        x = torch.randn(n, c, h, w, generator=generator)
        top = torch.randint(0, h - pattern_size + 1, (n,), generator=generator)
        left = torch.randint(0, w - pattern_size + 1, (n,), generator=generator)
        # Paste all patterns at once: pixel (i, j) of image m's pattern goes to
        # (top[m] + i, left[m] + j); index tensors broadcast to (n, c, pattern_size, pattern_size).
        offsets = torch.arange(pattern_size)
        rows = (top[:, None] + offsets)[:, None, :, None]
        cols = (left[:, None] + offsets)[:, None, None, :]
        x[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols] += patterns[y]
        return (x / scale).to(device), y.to(device)

    x_train, y_train = draw(n_train, "n_train", torch.Generator().manual_seed(2 * seed))
    x_test, y_test = draw(n_test, "n_test", torch.Generator().manual_seed(2 * seed + 1))
    return Data(x_train, y_train, x_test, y_test, classes=[f"pattern{i}" for i in range(k)], name="synthetic",
                mean=(0.0,) * c, std=(1.0,) * c)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of minibatches: consecutive slices of ``torch.randperm(n, generator=generator)``,
    each an int64 index tensor of ``batch_size`` (the last one possibly shorter), on the
    generator's device so that they index tensors there without a copy."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    order = torch.randperm(n, generator=generator, device=generator.device)
    yield from order.split(batch_size)


def balanced_subset(y: torch.Tensor, n: int, num_classes: int, generator: torch.Generator,
                    what: str = "n") -> torch.Tensor:
    """Sorted indices into ``y`` ``(N,)`` of ``n / num_classes`` examples of every class, each
    class's taken as the first ones of a random permutation drawn from ``generator`` (so
    one seed gives nested subsets as ``n`` grows).  ``what`` names ``n`` in the error raised
    when no such subset exists."""
    counts = torch.bincount(y, minlength=num_classes)
    available = num_classes * int(counts.min())
    if n <= 0 or n % num_classes or n > available:
        raise ValueError(f"{what}={n}: a balanced subset needs a positive multiple of {num_classes} (the number "
                         f"of classes) of at most {available} ({int(counts.min())} images in the rarest class), "
                         "or None for the whole split.")
    per_class = n // num_classes
    chosen = []
    for k in range(num_classes):
        members = (y == k).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` to float32 ``(pixel / 255 - mean) / std`` per channel."""
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    # In place on the one float copy: the full CIFAR-10 is 737 MB in float32, so temporaries count.
    return x.float().div_(255).sub_(mean).div_(std)


# --------------------------------------------------------------------------- decoding and caching

def _in_folder(root: Path, read: Callable[[], dict]) -> dict:
    """``read()`` of files under the data folder ``root``, holding its lock shared (loads of
    several processes run side by side).  When no other process holds it, what killed loads
    left there (temporary cache files, half-extracted archives) is removed first."""
    with FileLock(root / ".lock") as lock:
        if lock.acquire(exclusive=True, wait=False):
            for path in leftovers(root / "cache") + sorted((root / "extracted").glob(".folder-*")):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        lock.acquire(exclusive=False)
        return read()


def _cached(root: Path, key: str, decode) -> dict:
    """``root/cache/<key>.pt`` if it exists, else ``decode()`` saved there once (atomically,
    so a killed run never leaves a truncated cache).  The dict holds ``x_train``, ``x_test``
    uint8 ``(N, C, H, W)``, ``y_train``, ``y_test`` int64 ``(N,)`` and ``classes``."""
    path = root / "cache" / f"{key}.pt"
    digest_path = path.with_name(path.name + ".sha256")
    if path.exists():
        problem = None
        try:
            data = path.read_bytes()
            recorded = digest_path.read_text().strip() if digest_path.exists() else None
            if recorded != hashlib.sha256(data).hexdigest():
                problem = "its sha256 is not the one recorded" if recorded else "no sha256 recorded beside it"
            else:
                raw = torch.load(io.BytesIO(data), weights_only=True)
                if isinstance(raw, dict) and {"x_train", "y_train", "x_test", "y_test", "classes"} <= raw.keys():
                    return raw
                problem = "not a decoded data set"
        except Exception as error:  # a damaged or planted file: never loaded with code, decoded again
            problem = f"not a cache of tensors ({_first_line(error)})"
        warnings.warn(f"data cache {path}: {problem}; decoding the data set again.")
        path.unlink(missing_ok=True)
    raw = decode()
    data = torch_bytes(raw)
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest_path, (hashlib.sha256(data).hexdigest() + "\n").encode())
    return raw


def _read_torchvision(name: str, root: Path) -> dict:
    """CIFAR-10/100 from torchvision's files under ``root``, downloading them only if absent."""
    import torchvision

    dataset_class = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        splits = {split: dataset_class(root, train=split == "train", download=False) for split in ("train", "test")}
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        try:
            splits = {split: dataset_class(root, train=split == "train", download=True) for split in ("train", "test")}
        # Offline, urllib raises URLError (an OSError); a corrupt download, RuntimeError.
        except (OSError, RuntimeError) as error:
            raise DatasetNotFound(
                f"{name} is not under {root} and could not be downloaded ({type(error).__name__}: {error}). "
                f"Give a local copy: --set dataset=folder:/path/to/{name} (ImageFolder dir or .tar.gz, with train/ "
                f"and test/ inside), or put torchvision's {dataset_class.filename} in {root}/."
            ) from None
    raw = {"classes": list(splits["train"].classes)}
    for split, dataset in splits.items():
        # torchvision keeps CIFAR as uint8 (N, H, W, C); ours is (N, C, H, W).
        raw[f"x_{split}"] = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        raw[f"y_{split}"] = torch.tensor(dataset.targets, dtype=torch.int64)
    return raw


def identity(name: str) -> str:
    """What a dataset string of the config *is*, independent of where it was read from:
    ``"cifar10"``, ``"cifar100"``, ``"synthetic"`` as they are; ``"folder:PATH"`` as
    ``"sha256:<hex>"`` of the archive's bytes, or of a directory's file names and contents.

    Two copies of one archive at different paths are the same data set; a different archive
    under the same name is not.  Hashed once per process and file version (path, size, mtime).
    """
    if not name.startswith("folder:"):
        return name
    source = folder_source(name)
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    versions = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _sha256(str(source), versions)


def folder_source(name: str) -> Path:
    """The path of a ``folder:`` data set, checked for what can be read before anything is
    hashed or written: an ImageFolder directory with ``train/`` and ``test/``, or a
    ``.tar.gz`` file."""
    text = name[len("folder:"):].strip()
    if not text:
        raise ValueError(f"dataset {name!r} names no path: give --set dataset=folder:/path/to/cifar10-jpeg.tar.gz "
                         "(an ImageFolder directory or .tar.gz archive with train/ and test/ inside).")
    source = Path(text).expanduser().resolve()
    if not source.exists():
        raise DatasetNotFound(f"dataset {name!r}: {source} does not exist. Pass the path of the ImageFolder "
                              "directory or .tar.gz archive you have, e.g. --set dataset=folder:/path/to/cifar10-jpeg.tar.gz.")
    if source.is_dir():
        _split_dirs(source)
    elif not source.name.endswith(".tar.gz"):
        raise ValueError(f"dataset {name!r}: {source} is neither a folder nor a .tar.gz archive: re-pack it as "
                         f".tar.gz (tar czf data.tar.gz train test) or extract it and give the folder.")
    return source


@functools.lru_cache(maxsize=16)
def _sha256(path: str, versions: tuple) -> str:
    """The content hash of ``path``; ``versions`` (each file's path, size and mtime) is the
    cache key, so that an edited file is hashed afresh."""
    digest = hashlib.sha256()
    source = Path(path)
    for file in (Path(v[0]) for v in versions):
        if file != source:
            digest.update(f"{file.relative_to(source)}\0".encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _load_folder(source: Path, root: Path) -> dict:
    """The decoded (cached) ImageFolder tree at ``source``, a directory or a ``.tar.gz``.

    Extraction folders and caches are keyed by the content hash (:func:`identity`): a
    different archive with the same file name is never mistaken for the first, and a
    replaced archive is extracted and decoded afresh."""
    if source.name.endswith(".tar.gz"):
        if not source.is_file():
            raise DatasetNotFound(f"archive {source} does not exist.")
        key = _key(source.name[:-len(".tar.gz")], identity(f"folder:{source}"))
        return _cached(root, key, lambda: _decode_folder(_extract(source, root / "extracted" / key)))
    if not source.is_dir():
        raise DatasetNotFound(f"dataset folder {source} does not exist (expected train/ and test/ subfolders).")
    _split_dirs(source)
    return _cached(root, _key(source.name, identity(f"folder:{source}")), lambda: _decode_folder(source))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _key(stem: str, fingerprint: str) -> str:
    return f"folder-{stem}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}"


def _extract(archive: Path, target: Path) -> Path:
    """``archive`` extracted once into ``target``; the tree root returned is the one holding
    ``train/`` and ``test/`` (the top level, or its single subfolder)."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Extract beside the target, then rename: a killed extraction leaves only a temporary
        # folder, never a half-filled target that later runs would take as complete.
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")  # "data": no absolute paths, links out, devices
            os.rename(tmp, target)
        except BaseException as error:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                with tarfile.open(archive, "r:gz") as tar:
                    raise disk_full(target, sum(member.size for member in tar)) from None
            # A failed rename onto a target that now exists: another process extracted it first.
            if isinstance(error, OSError) and target.exists():
                pass
            elif isinstance(error, (tarfile.TarError, EOFError, zlib.error)) or (
                    isinstance(error, OSError) and not isinstance(error, PermissionError)):
                raise BadDataset(f"archive {archive} cannot be extracted ({_first_line(error)}): it is damaged, "
                                 "truncated or not a .tar.gz of an ImageFolder tree; download or re-create it "
                                 "(tar czf NAME.tar.gz train test).") from None
            else:
                raise
    children = [p for p in target.iterdir() if p.is_dir()]
    if not (target / "train").is_dir() and len(children) == 1:
        return children[0]
    return target


def _split_dirs(tree: Path) -> dict[str, Path]:
    """``{"train": tree/train, "test": tree/test}``, or an error naming the missing one."""
    dirs = {split: tree / split for split in ("train", "test")}
    for split, path in dirs.items():
        if not path.is_dir():
            raise BadDataset(f"ImageFolder dataset {tree} has no {split}/ subfolder: expected "
                             f"{tree}/train/<class>/<image> and {tree}/test/<class>/<image>.")
    return dirs


def _decode_folder(tree: Path) -> dict:
    """Decode ``tree/train`` and ``tree/test`` (ImageFolder layout) to uint8 RGB tensors."""
    import torchvision

    raw = {}
    for split, path in _split_dirs(tree).items():
        # ImageFolder only lists the files (sorted classes, sorted names); we decode them ourselves.
        try:
            folder = torchvision.datasets.ImageFolder(path)
        except (OSError, RuntimeError) as error:  # no class folder, or a class without images
            raise BadDataset(f"ImageFolder split {path} cannot be read ({_first_line(error)}): expected "
                             f"{path}/<class>/<image> with images in every class folder.") from None
        if raw.setdefault("classes", folder.classes) != folder.classes:
            raise BadDataset(f"{tree}: train/ and test/ have different classes "
                             f"({raw['classes']} vs {folder.classes}).")
        paths, labels = zip(*folder.samples)
        raw[f"x_{split}"] = _decode_images(list(paths))
        raw[f"y_{split}"] = torch.tensor(labels, dtype=torch.int64)
    return raw


def _decode_images(paths: list[str]) -> torch.Tensor:
    """Images of one size decoded to uint8 RGB ``(N, 3, H, W)``, with a few threads."""
    from PIL import Image

    def read(path: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise BadDataset(f"{path} is not a readable image ({_first_line(error)}): remove or replace it.") from None

    first = read(paths[0])
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)

    def fill(start: int, stop: int) -> None:
        for i in range(start, stop):
            image = read(paths[i])
            if image.shape != first.shape:
                raise BadDataset(f"{paths[i]} is {image.shape[1]}x{image.shape[0]} pixels, "
                                 f"{paths[0]} {first.shape[1]}x{first.shape[0]}: all images must be the same size.")
            out[i] = image

    chunk = -(-len(paths) // _DECODE_THREADS)
    with ThreadPoolExecutor(_DECODE_THREADS) as pool:
        for future in [pool.submit(fill, s, min(s + chunk, len(paths))) for s in range(0, len(paths), chunk)]:
            future.result()  # re-raises a worker's error
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
