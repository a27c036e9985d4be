"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never a
half-written one, whenever the writer is killed (kill -9 included).

Writers leave nothing but a hidden ``.<name>.<random>.tmp`` beside the target while they
write; a killed writer leaves it behind (:func:`leftovers` finds them for the next start).
"""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFull(OSError):
    """No space left where a file is written; the message gives the place and the size
    (:func:`disk_full` writes it)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # OSError's would call DiskFull(errno, message)
        return type(self), (self.strerror,)


def disk_full(path: Path, needed: int) -> DiskFull:
    """The error of writing ``needed`` bytes at ``path`` on a full device."""
    try:
        free = f", {shutil.disk_usage(path.parent).free / 1e6:.0f} MB free"
    except OSError:
        free = ""
    return DiskFull(f"no space left on the device of {path.parent} to write {path.name} (about "
                    f"{needed / 1e6:.0f} MB needed{free}): free some space there, or give another folder "
                    f"(--out, --set data_root=...)")


def write_bytes_unlisted(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, rename
    (recorded in no manifest: :func:`atomic_write_bytes` is what writers call)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise disk_full(path, len(data)) from None
        raise
    return path


def atomic_write_files(files: dict) -> None:
    """Write each ``{path: bytes}`` atomically, in order; inside a result store (a folder
    above holding ``manifest.json``) with their sha256 recorded in its manifest, before and
    after the writes (:mod:`needle_core.integrity`), so that a reader checks them all."""
    from . import integrity

    files = {Path(p): d for p, d in files.items()}
    stores: dict = {}
    for path in files:
        root = integrity.store_of(path)
        if root is not None and not integrity.unlisted(path.name):
            stores.setdefault(root, {})[path] = integrity.sha256_bytes(files[path])
    for root, digests in stores.items():
        integrity.begin(root, digests)
    for path, data in files.items():
        write_bytes_unlisted(path, data)
    for root, digests in stores.items():
        integrity.commit(root, digests)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, rename;
    inside a result store, with its sha256 in the store's manifest (:func:`atomic_write_files`)."""
    atomic_write_files({path: data})
    return Path(path)


def leftovers(folder: Path) -> list[Path]:
    """The temporary files of killed writers anywhere under ``folder``."""
    return sorted(folder.rglob(".*.tmp")) if folder.exists() else []


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def torch_bytes(obj) -> bytes:
    """``torch.save`` into memory."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def parquet_bytes(frame) -> bytes:
    """A pandas DataFrame as Parquet, in memory."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_bytes(path, json_bytes(obj))


def atomic_torch_save(path: str | Path, obj) -> Path:
    """``torch.save`` made atomic (serialised in memory first)."""
    return atomic_write_bytes(path, torch_bytes(obj))
