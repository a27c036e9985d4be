"""Checksums of what a result store holds, and the one error that a damaged file gives.

Every file a run writes gets its sha256 recorded: ``spec.json`` and ``metrics.parquet`` in
the run's ``provenance.json`` (key ``checksums``), each checkpoint ``<name>.pt`` in a sidecar
``<name>.pt.sha256`` beside it (checkpoints are rewritten while the run trains, and
recreated after it).  Readers compare before they parse, so a flipped byte is an error
naming the file instead of a NaN weight (read as a divergence) or a wrong number in a
table.  Files of runs written before checksums existed have none and are read unchecked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .io import atomic_write_bytes, atomic_write_text


class StoreDamaged(ValueError):
    """A file of a result store is not what its run wrote; the message names the file, what
    is wrong and the fix (deleting the run's folder, so that the sweep runs it again)."""

    def __init__(self, path: Path, problem: str, run_dir: Path):
        self.path, self.problem, self.run_dir = path, problem, run_dir
        super().__init__(f"{path}: {problem}: delete {run_dir}/ to re-run it.")

    def __reduce__(self):  # rebuilt from its parts where it is unpickled (a Dask client)
        return type(self), (self.path, self.problem, self.run_dir)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(path: Path, recorded: list[str], run_dir: Path, data: bytes | None = None) -> None:
    """Raise :class:`StoreDamaged` unless the sha256 of ``path`` (of ``data``, its bytes
    when already read) is one of ``recorded``."""
    found = sha256_bytes(data) if data is not None else sha256_file(path)
    if found not in recorded:
        raise StoreDamaged(path, f"sha256 {found[:12]}... is not the recorded {recorded[0][:12]}... "
                                 "(damaged or replaced)", run_dir)


def sidecar(path: Path) -> Path:
    """``<name>.pt.sha256``: the digests of checkpoint ``<name>.pt``, one per line."""
    return path.with_name(path.name + ".sha256")


def sidecar_digests(path: Path) -> list[str] | None:
    """The digests the sidecar of ``path`` accepts; None for a checkpoint without one
    (written before checksums existed)."""
    side = sidecar(path)
    return side.read_text().split() if side.exists() else None


def write_checked(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with its sha256 in the sidecar.

    Two files cannot be replaced at once, so the sidecar is written first listing the new
    digest *and* those of the file still there, and once the file is replaced, the new
    digest alone: whenever the writer is killed (kill -9 included), the sidecar lists the
    checkpoint on disk.
    """
    digest = sha256_bytes(data)
    before = sidecar_digests(path)
    if before is None:
        before = [sha256_file(path)] if path.exists() else []
    atomic_write_text(sidecar(path), "\n".join(dict.fromkeys([digest, *before])) + "\n")
    atomic_write_bytes(path, data)
    atomic_write_text(sidecar(path), digest + "\n")
    return path
