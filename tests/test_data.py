"""needle_core.data: synthetic data, balanced subsets, minibatches, ImageFolder trees (plain
and .tar.gz), the decode cache, CIFAR via a stand-in for torchvision, normalisation.

Everything runs on tiny data made here, on the CPU, without the internet."""
from __future__ import annotations

import tarfile
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from needle_core import cli, data
from needle_core.data import (CIFAR10_NORMALISATION, CIFAR100_NORMALISATION, Data, DatasetNotFound, balanced_subset,
                              batches, load, synthetic)
from needle_core.lock import FileLock

CLASSES = ["ant", "bee", "cat"]
N_TRAIN_PER_CLASS, N_TEST_PER_CLASS = 4, 2


def pixel(split: str, k: int, i: int) -> tuple[int, int, int]:
    """The constant RGB colour of image ``i`` of class ``k`` in ``split``: all distinct."""
    return (40 * k + 10 * i + (5 if split == "test" else 0), 200 - 30 * k, 7 * i)


def make_image_folder(tree, splits=("train", "test")):
    """A tiny ImageFolder tree of 8×8 PNGs of constant colours, 3 classes."""
    for split in splits:
        for k, name in enumerate(CLASSES):
            (tree / split / name).mkdir(parents=True)
            for i in range(N_TRAIN_PER_CLASS if split == "train" else N_TEST_PER_CLASS):
                Image.new("RGB", (8, 8), pixel(split, k, i)).save(tree / split / name / f"{i:04d}.png")
    return tree


def pixels_of(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised images back to 0..255."""
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    return (x * std + mean) * 255


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts the calls of the image decoder (one per split decoded)."""
    calls = []
    original = data._decode_images

    def counting(paths):
        calls.append(len(paths))
        return original(paths)

    monkeypatch.setattr(data, "_decode_images", counting)
    return calls


# --------------------------------------------------------------------------- synthetic

def test_synthetic_shapes_and_types():
    d = synthetic(200, 100, seed=0)
    assert d.x_train.shape == (200, 3, 32, 32) and d.x_train.dtype == torch.float32
    assert d.y_train.shape == (200,) and d.y_train.dtype == torch.int64
    assert d.x_test.shape == (100, 3, 32, 32) and d.y_test.shape == (100,)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and d.name == "synthetic"
    assert torch.bincount(d.y_train).tolist() == [20] * 10
    assert torch.bincount(d.y_test).tolist() == [10] * 10
    # Generated standardised, like normalised CIFAR.
    assert abs(float(d.x_train.mean())) < 0.02 and abs(float(d.x_train.std()) - 1) < 0.02


def test_synthetic_is_deterministic_per_seed():
    a, b, c = synthetic(100, 50, seed=3), synthetic(100, 50, seed=3), synthetic(100, 50, seed=4)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.x_train, c.x_train)
    # The test set does not depend on the size of the training set, nor equal it.
    assert torch.equal(synthetic(200, 50, seed=3).x_test, a.x_test)
    assert not torch.equal(synthetic(50, 50, seed=3).x_train, a.x_test)


def test_synthetic_patterns_carry_no_mean_colour():
    """Mean colour and energy are the same for every class: only the shape tells it."""
    d = synthetic(2000, 10, seed=0)
    colour = d.x_train.mean(dim=(2, 3))                      # (N, 3)
    per_class = torch.stack([colour[d.y_train == k].mean(0) for k in range(10)])
    assert per_class.abs().max() < 0.01


def test_load_synthetic_and_bad_sizes(tmp_path):
    d = load("synthetic", tmp_path, n_train=100, n_test=30, seed=1)
    assert torch.equal(d.x_train, synthetic(100, 30, seed=1).x_train)
    assert len(load("synthetic", tmp_path).y_train) == 2000
    with pytest.raises(ValueError, match="multiple of 10"):
        synthetic(105, 10)
    with pytest.raises(ValueError, match="standardised"):
        load("synthetic", tmp_path, normalisation=CIFAR10_NORMALISATION)
    assert not any(tmp_path.iterdir())  # nothing cached for generated data


# --------------------------------------------------------------------------- subsets and batches

def test_balanced_subset_is_balanced_seeded_and_nested():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 40)[torch.randperm(120, generator=torch.Generator().manual_seed(0))]
    pick = lambda n, seed: balanced_subset(y, n, 3, torch.Generator().manual_seed(seed))  # noqa: E731
    index = pick(30, 0)
    assert torch.bincount(y[index], minlength=3).tolist() == [10, 10, 10]
    assert len(index.unique()) == 30 and torch.equal(index, index.sort().values)
    assert torch.equal(index, pick(30, 0))
    assert not torch.equal(index, pick(30, 1))
    assert set(pick(15, 0).tolist()) <= set(index.tolist())


@pytest.mark.parametrize("n", [31, 93, 0])
def test_balanced_subset_rejects_impossible_sizes(n):
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 40)
    with pytest.raises(ValueError, match=r"n_train=.*multiple of 3.*at most 90.*30 images in the rarest class"):
        balanced_subset(y, n, 3, torch.Generator(), what="n_train")


def test_batches_cover_one_seeded_permutation():
    chunks = list(batches(10, 4, torch.Generator().manual_seed(0)))
    assert [len(c) for c in chunks] == [4, 4, 2] and all(c.dtype == torch.int64 for c in chunks)
    assert torch.equal(torch.cat(chunks), torch.randperm(10, generator=torch.Generator().manual_seed(0)))
    # Successive epochs from one generator differ; the same seed replays them.
    g = torch.Generator().manual_seed(0)
    first, second = torch.cat(list(batches(10, 4, g))), torch.cat(list(batches(10, 4, g)))
    assert not torch.equal(first, second)
    with pytest.raises(ValueError):
        next(batches(10, 0, g))


# --------------------------------------------------------------------------- ImageFolder trees

def test_folder_dataset_decodes_normalises_and_subsets(tmp_path):
    tree = make_image_folder(tmp_path / "tiny")
    d = load(f"folder:{tree}", tmp_path / "root")
    assert d.classes == CLASSES and d.name == f"folder:{tree}"
    assert d.x_train.shape == (12, 3, 8, 8) and d.x_train.dtype == torch.float32 and d.x_test.shape == (6, 3, 8, 8)
    assert d.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and d.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    # The CIFAR-10 constants of paper.md §4 by default: undoing them gives back the PNGs' pixels.
    assert (d.mean, d.std) == CIFAR10_NORMALISATION
    expected = torch.tensor([pixel("train", k, i) for k in range(3) for i in range(4)], dtype=torch.float32)
    assert torch.allclose(pixels_of(d.x_train, *CIFAR10_NORMALISATION), expected[:, :, None, None].expand(12, 3, 8, 8),
                          atol=1e-3)
    # Other constants on request.
    custom = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    e = load(f"folder:{tree}", tmp_path / "root", normalisation=custom)
    assert torch.allclose(e.x_train, (pixels_of(d.x_train, *CIFAR10_NORMALISATION) / 255 - 0.5) / 0.25, atol=1e-4)
    # Balanced, seeded subsets of both splits.
    s = load(f"folder:{tree}", tmp_path / "root", n_train=6, n_test=3, seed=5)
    assert torch.bincount(s.y_train).tolist() == [2, 2, 2] and torch.bincount(s.y_test).tolist() == [1, 1, 1]
    assert torch.equal(s.x_train, load(f"folder:{tree}", tmp_path / "root", n_train=6, n_test=3, seed=5).x_train)
    with pytest.raises(ValueError, match="n_train=7"):
        load(f"folder:{tree}", tmp_path / "root", n_train=7)
    with pytest.raises(ValueError, match="n_test=9.*at most 6"):
        load(f"folder:{tree}", tmp_path / "root", n_test=9)


def test_folder_cache_is_written_once_and_reused(tmp_path, decode_calls):
    tree = make_image_folder(tmp_path / "tiny")
    first = load(f"folder:{tree}", tmp_path / "root")
    assert decode_calls == [12, 6]
    cached = list((tmp_path / "root" / "cache").glob("*.pt"))
    assert len(cached) == 1 and cached[0].name.startswith("folder-tiny-")
    written = cached[0].stat().st_mtime_ns
    second = load(f"folder:{tree}", tmp_path / "root", n_train=3)
    assert decode_calls == [12, 6]  # no decoding the second time
    assert cached[0].stat().st_mtime_ns == written
    assert torch.equal(first.x_test, second.x_test)
    # Changing the folder's files makes a new cache entry.
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tree / "test" / "ant" / "0099.png")
    assert len(load(f"folder:{tree}", tmp_path / "root").y_test) == 7
    assert decode_calls == [12, 6, 12, 7]


@pytest.mark.parametrize("top_folder", [False, True])
def test_folder_tar_gz_is_extracted_once(tmp_path, decode_calls, monkeypatch, top_folder):
    tree = make_image_folder(tmp_path / "src" / "tiny-jpeg")
    archive = tmp_path / "tiny-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if top_folder:   # tiny-jpeg/train/..., tiny-jpeg/test/...
            tar.add(tree, arcname="tiny-jpeg")
        else:            # train/..., test/... (the layout of `tar xzf ... -C DIR`)
            for split in ("train", "test"):
                tar.add(tree / split, arcname=split)
    root = tmp_path / "root"
    d = load(f"folder:{archive}", root, n_train=3)
    assert d.classes == CLASSES and len(d.y_train) == 3 and len(d.y_test) == 6
    [extracted] = (root / "extracted").iterdir()  # one folder, keyed by content: no temporary folder left
    assert extracted.name.startswith("folder-tiny-jpeg-")
    assert (extracted / "tiny-jpeg" / "train" if top_folder else extracted / "train").is_dir()
    assert decode_calls == [12, 6]
    # The second load reads the cache: neither extraction nor decoding.
    monkeypatch.setattr(data, "_extract", lambda *args: pytest.fail("extracted again"))
    again = load(f"folder:{archive}", root)
    assert decode_calls == [12, 6] and torch.equal(again.x_test, d.x_test)


def test_folder_errors_name_what_is_missing(tmp_path):
    tree = make_image_folder(tmp_path / "only-train", splits=("train",))
    with pytest.raises(data.BadDataset, match=r"no test/ subfolder"):  # here, but the wrong layout
        load(f"folder:{tree}", tmp_path / "root")
    with pytest.raises(DatasetNotFound, match=r"does not exist"):
        load(f"folder:{tmp_path / 'absent'}", tmp_path / "root")
    with pytest.raises(DatasetNotFound, match=r"does not exist"):
        load(f"folder:{tmp_path / 'absent.tar.gz'}", tmp_path / "root")
    with pytest.raises(ValueError, match="unknown dataset"):
        load("imagenet", tmp_path)


def test_images_of_different_sizes_are_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="same size"):
        data._decode_images([str(tmp_path / "a.png"), str(tmp_path / "b.png")])


# --------------------------------------------------------------------------- CIFAR through torchvision

def fake_cifar(base, offline: bool):
    """A stand-in for torchvision's CIFAR class ``base``: no files are read or downloaded.
    Offline, it raises what torchvision raises without files (RuntimeError) and without
    internet (URLError); online, it holds 20 train and 10 test images of 10 classes."""

    class Fake(base):
        constructed = []

        def __init__(self, root, train=True, download=False):
            Fake.constructed.append(download)
            if offline:
                if download:
                    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
                raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
            n = 20 if train else 10
            rng = np.random.default_rng(0 if train else 1)
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)   # torchvision's (N, H, W, C)
            self.targets = [i % 10 for i in range(n)]
            self.classes = [f"c{k}" for k in range(10)]

    return Fake


def test_cifar10_offline_says_how_to_use_a_local_copy(tmp_path, monkeypatch, capsys):
    fake = fake_cifar(torchvision.datasets.CIFAR10, offline=True)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    with pytest.raises(DatasetNotFound) as error:
        load("cifar10", tmp_path / "root")
    assert isinstance(error.value, FileNotFoundError)
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no 25-line chain
    message = str(error.value)
    for needle in ("could not be downloaded", "URLError", "--set dataset=folder:/path/to/cifar10 (ImageFolder dir or "
                   ".tar.gz", "train/ and test/", "cifar-10-python.tar.gz", str(tmp_path / "root")):
        assert needle in message
    assert fake.constructed == [False, True]  # downloading only after the files were found absent
    # The command line: one error line, exit code 2, nothing trained.
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", "--set", "dataset=cifar10", "--set", f"data_root={tmp_path / 'root'}",
                  "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == f"error: {message}\n"  # one line, nothing before it
    assert not list((tmp_path / "store" / "runs").rglob("provenance.json"))


def test_leftovers_of_killed_loads_are_removed_when_no_load_runs(tmp_path):
    """A temporary cache file and a half-extracted archive of a killed load go at the next
    load, unless another process holds the data folder (it may be writing them)."""
    tree = make_image_folder(tmp_path / "src" / "tiny")
    root = tmp_path / "root"
    tmp_cache, tmp_extract = root / "cache" / ".cifar10.pt.abc123.tmp", root / "extracted" / ".folder-x-0123.q1w2"
    tmp_cache.parent.mkdir(parents=True)
    tmp_cache.write_bytes(b"\0" * 1000)
    (tmp_extract / "train").mkdir(parents=True)
    with FileLock(root / ".lock") as other:
        other.acquire(exclusive=False)
        load(f"folder:{tree}", root)
        assert tmp_cache.exists() and tmp_extract.exists()
    load(f"folder:{tree}", root)
    assert not tmp_cache.exists() and not tmp_extract.exists()
    assert len(list((root / "cache").glob("folder-tiny-*.pt"))) == 1


@pytest.mark.parametrize("name, cls, constants", [("cifar10", "CIFAR10", CIFAR10_NORMALISATION),
                                                  ("cifar100", "CIFAR100", CIFAR100_NORMALISATION)])
def test_cifar_is_read_cached_and_normalised(tmp_path, monkeypatch, name, cls, constants):
    fake = fake_cifar(getattr(torchvision.datasets, cls), offline=False)
    monkeypatch.setattr(torchvision.datasets, cls, fake)
    d = load(name, tmp_path, n_train=10)
    assert fake.constructed == [False, False]  # files present: no download attempted
    assert (tmp_path / "cache" / f"{name}.pt").is_file()
    assert (d.mean, d.std) == constants and d.classes == [f"c{k}" for k in range(10)]
    assert d.x_train.shape == (10, 3, 32, 32) and torch.bincount(d.y_train).tolist() == [1] * 10
    raw = np.random.default_rng(1).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    assert torch.allclose(pixels_of(d.x_test, *constants), torch.from_numpy(raw).permute(0, 3, 1, 2).float(), atol=1e-3)
    load(name, tmp_path)
    assert fake.constructed == [False, False]  # the second load reads the cache only


# --------------------------------------------------------------------------- Data

def test_data_to_and_properties():
    d = synthetic(20, 10)
    moved = d.to("cpu")
    assert isinstance(moved, Data) and moved.device == torch.device("cpu") and torch.equal(moved.x_test, d.x_test)
    assert "train=20" in repr(d) and "num_classes=10" in repr(d)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10


def test_archives_of_the_same_name_are_told_apart_by_content(tmp_path):
    """A second, different archive under the same file name (or the first one replaced) is
    extracted and decoded afresh, never read from the first one's folder or cache."""
    root = tmp_path / "root"
    loaded = []
    for i in range(2):
        tree = make_image_folder(tmp_path / f"src{i}" / "tiny-jpeg")
        if i:  # the second archive lacks one training image
            next((tree / "train").rglob("*.png")).unlink()
        archive = tmp_path / f"place{i}" / "tiny-jpeg.tar.gz"
        archive.parent.mkdir()
        with tarfile.open(archive, "w:gz") as tar:
            for split in ("train", "test"):
                tar.add(tree / split, arcname=split)
        loaded.append(load(f"folder:{archive}", root))
        assert data.identity(f"folder:{archive}").startswith("sha256:")
    assert len(loaded[0].y_train) != len(loaded[1].y_train)
    assert len(list((root / "extracted").iterdir())) == 2
