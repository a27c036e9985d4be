"""Checksums of everything a result store holds (one manifest per store), and the one error
that a damaged file gives.

``<store>/manifest.json`` records the sha256 of every file a reader uses: ``config.json``,
each run's ``spec.json``, ``metrics.parquet``, ``provenance.json`` and checkpoints, the
landscape records and tables.  Every write into a store goes through
:func:`needle_core.io.atomic_write_bytes`, which finds the store (the nearest folder above
the file holding a manifest) and records the file's digest in two steps, so that whenever
the writer is killed (kill -9 included) the manifest accepts the file on disk:

1. before the file is replaced, its entry accepts the new digest *and* what was accepted
   before (:data:`ABSENT` where the file did not exist yet);
2. once it is replaced, the new digest alone.

Readers compare before they parse (:func:`read_checked`), so a flipped byte is an error
naming the file instead of a NaN weight, a dropped run or a wrong number in a table.  A file
of a store without an entry is damage too (it was not written by a sweep, or the manifest
lost it), and so is a file the manifest lists that is gone (checkpoints excepted: they are
not committed, and a clone has none).  Stores written before the manifest existed are
upgraded once, explicitly: ``python -m needle_core upgrade --out <store>`` (:mod:`needle_core.store`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = "needle-store-manifest/1"
#: An accepted "digest" meaning: the file may not exist (a first write in flight).
ABSENT = "absent"
#: Files of a store that are never read for results, so never listed.
UNLISTED = (MANIFEST, ".lock", ".manifest.lock")


def unlisted(name: str) -> bool:
    """Whether a file of a store is one the manifest never lists: the manifest itself and the
    flock files (the store's, a run's, a curve task's ``<task>.lock``), never read for results."""
    return name in UNLISTED or name.endswith(".lock")


class StoreDamaged(ValueError):
    """A file of a result store is not what was written; the message is one line naming the
    file, what is wrong and the fix (by default: delete the run's folder, so that the next
    sweep runs it again)."""

    def __init__(self, path: Path, problem: str, run_dir: Path | None = None, fix: str | None = None):
        self.path, self.problem, self.run_dir, self.fix = path, problem, run_dir, fix
        fix = fix or (f"delete {run_dir}/ to re-run it" if run_dir is not None else "restore it")
        super().__init__(f"{path}: {problem}: {fix}.")

    def __reduce__(self):  # rebuilt from its parts where it is unpickled (a Dask client)
        return type(self), (self.path, self.problem, self.run_dir, self.fix)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the manifest

def store_of(path: Path) -> Path | None:
    """The store a file belongs to: the nearest folder above ``path`` holding a manifest."""
    path = Path(path).absolute()
    for folder in path.parents:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def upgrade_command(root: Path) -> str:
    return f"python -m needle_core upgrade --out {root}"


def rebuild_command(root: Path) -> str:
    return f"python -m needle_core rebuild-config --out {root}"


_CACHE: dict[str, tuple[tuple, dict]] = {}


def load_manifest(root: Path, fresh: bool = False) -> dict[str, list[str]]:
    """``{relative path: accepted digests}`` of the store at ``root``; :class:`StoreDamaged`
    when the manifest is missing (an old store) or unreadable."""
    path = Path(root) / MANIFEST
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise StoreDamaged(path, "missing (a store written before every file had a checksum, or the manifest "
                                 "was deleted)", fix=f"run '{upgrade_command(root)}' once: it checks what earlier "
                                                    "records allow and says what it vouches for") from None
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _CACHE.get(str(path))
    if cached is not None and cached[0] == key and not fresh:
        return cached[1]
    try:
        record = json.loads(path.read_bytes())
        files = record["files"]
        if record.get("format") != FORMAT or not isinstance(files, dict) or not all(
                isinstance(v, list) and all(isinstance(d, str) for d in v) and v for v in files.values()):
            raise ValueError(f"not a manifest of format {FORMAT}")
        if record.get("sha256") != _files_digest(files):
            raise ValueError("its own sha256 does not match its entries: damaged or edited")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise StoreDamaged(path, f"not a readable manifest ({_first_line(error)})",
                           fix=f"restore it (git checkout -- {path}, for a committed store), or rebuild it with "
                               f"'{upgrade_command(root)} --rebuild', which vouches for every file as it is "
                               f"now") from None
    _CACHE[str(path)] = (key, files)
    return files


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _files_digest(files: dict) -> str:
    """The manifest's own checksum: the sha256 of its entries (a flipped digest is named as
    damage of the manifest, not of the file it lists)."""
    return sha256_bytes(json.dumps(files, sort_keys=True).encode())


def write_manifest(root: Path, files: dict[str, list[str]]) -> None:
    from .io import json_bytes, write_bytes_unlisted

    files = dict(sorted(files.items()))
    write_bytes_unlisted(Path(root) / MANIFEST, json_bytes({"format": FORMAT, "files": files,
                                                            "sha256": _files_digest(files)}))


def update(root: Path, changes) -> None:
    """Apply ``changes`` (``{name: digests}``, ``None`` drops an entry; or a function of the
    current entries returning them) to the manifest, under its lock."""
    from .lock import FileLock

    with FileLock(Path(root) / ".manifest.lock") as lock:
        lock.acquire()
        files = dict(load_manifest(root, fresh=True))
        if callable(changes):
            changes = changes(files)
        for name, digests in changes.items():
            if digests is None:
                files.pop(name, None)
            else:
                files[name] = list(dict.fromkeys(digests))
        write_manifest(root, files)


def create(root: Path) -> None:
    """An empty manifest for a new store (nothing happens where one exists)."""
    root = Path(root)
    if not (root / MANIFEST).exists():
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(root, {})


def relative(root: Path, path: Path) -> str:
    return Path(path).absolute().relative_to(Path(root).absolute()).as_posix()


def begin(root: Path, paths_digests: dict[Path, str]) -> None:
    """Step 1 of a write: each file's entry accepts its new digest and what it accepted
    before (:data:`ABSENT` for a file not there yet)."""
    def changes(files: dict) -> dict:  # under the manifest's lock: no other writer's step in between
        out = {}
        for path, digest in paths_digests.items():
            name = relative(root, path)
            before = files.get(name) or ([] if Path(path).exists() else [ABSENT])
            out[name] = [digest, *before]
        return out

    update(root, changes)


def commit(root: Path, paths_digests: dict[Path, str]) -> None:
    """Step 2: the new digests alone."""
    update(root, {relative(root, p): [d] for p, d in paths_digests.items()})


def remove(path: Path) -> None:
    """Delete a file of a store and its entry (the file first: killed in between, the entry
    of a file that is gone is harmless for the optional files removed this way)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    root = store_of(path)
    if root is not None:
        update(root, {relative(root, path): None})


def optional(name: str) -> bool:
    """Files whose absence is no damage: checkpoints (never committed; resume states are
    removed when their run finishes)."""
    return name.endswith(".pt")


def deleted_whole(root: Path, name: str) -> bool:
    """Whether the listed file ``name`` went with its whole unit, as the fixes say to do:
    its run's folder, or both files of a landscape point (then the next sweep, or the
    landscape command, makes them again: no damage)."""
    parts = name.split("/")
    if parts[0] == "runs" and len(parts) >= 3:
        return not (Path(root) / Path(*parts[:-1])).exists()
    if parts[0] == "landscape" and len(parts) == 2:
        stem = Path(root) / "landscape" / Path(parts[1]).stem
        return not stem.with_suffix(".json").exists() and not stem.with_suffix(".parquet").exists()
    return False


def fix_for(root: Path, name: str) -> str:
    """What to do about a damaged or missing file ``name`` of the store at ``root``."""
    parts = name.split("/")
    if name == "config.json":
        return (f"rebuild it from the runs' provenance with '{rebuild_command(root)}' (or restore it: git checkout -- "
                f"{Path(root) / name}, for a committed store)")
    if parts[0] == "runs" and len(parts) >= 3:
        return f"delete {Path(root) / Path(*parts[:-1])}/ to re-run it"
    if parts[0] == "landscape":
        stem = Path(root) / "landscape" / Path(parts[-1]).stem
        return (f"delete {stem}.json and {stem}.parquet, then measure it again with 'python -m needle_core landscape "
                f"--out {root} ...' where the sweep's checkpoints are")
    return f"delete it, or vouch for it with '{upgrade_command(root)}'"


def check_bytes(root: Path, path: Path, data: bytes) -> None:
    """Raise :class:`StoreDamaged` unless ``data`` (the bytes of ``path``) is what the
    manifest of ``root`` records; looks again at a manifest that changed meanwhile (a file
    replaced by a writer between the two reads)."""
    _accept(root, path, sha256_bytes(data))


def read_checked(path: Path, root: Path | None = None) -> bytes:
    """The bytes of a store's file, checked against its manifest (:class:`StoreDamaged`
    naming the file and the fix otherwise, a missing file included)."""
    path = Path(path)
    root = Path(root) if root is not None else store_of(path)
    if root is None:
        raise StoreDamaged(path, "its store has no manifest.json (written before every file had a checksum)",
                           fix="run 'python -m needle_core upgrade --out <store>' once")
    load_manifest(root)  # a missing or damaged manifest is named first
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoreDamaged(path, "missing", fix=fix_for(root, relative(root, path))) from None
    except IsADirectoryError:
        raise StoreDamaged(path, "a folder, not a file", fix=fix_for(root, relative(root, path))) from None
    check_bytes(root, path, data)
    return data


def check_file(path: Path, root: Path) -> None:
    """:func:`check_bytes` of a (large) file, hashed in blocks."""
    _accept(root, path, sha256_file(path))


def _accept(root: Path, path: Path, found: str) -> None:
    """Return if ``found`` (the sha256 of ``path``) is a digest the manifest of ``root`` accepts
    for it, else raise :class:`StoreDamaged`; looks again at a manifest that changed meanwhile
    (a file replaced by a writer between the two reads)."""
    name = relative(root, path)
    for fresh in (False, True):
        accepted = load_manifest(root, fresh=fresh).get(name)
        if accepted is not None and found in accepted:
            return
    if accepted is None:
        raise StoreDamaged(path, "no checksum recorded in the store's manifest (written outside needle_core, or "
                                 "the manifest lost it)", fix=fix_for(root, name))
    shown = [d for d in accepted if d != ABSENT] or accepted
    raise StoreDamaged(path, f"sha256 {found[:12]}... is not the recorded {shown[0][:12]}... (damaged or replaced)",
                       fix=fix_for(root, name))


# --------------------------------------------------------------------------- old stores

def sidecar(path: Path) -> Path:
    """``<name>.pt.sha256``: where stores written before the manifest kept a checkpoint's
    digests (read by ``upgrade`` only)."""
    return path.with_name(path.name + ".sha256")


def sidecar_digests(path: Path) -> list[str] | None:
    """The digests an old sidecar of ``path`` accepts; None without one; ``[]`` for an
    empty or unreadable one (which accepts nothing)."""
    side = sidecar(path)
    if not side.exists():
        return None
    try:
        return [d for d in side.read_text().split() if len(d) == 64]
    except (OSError, UnicodeDecodeError):
        return []


def write_checked(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with its digest in the store's manifest (what
    every store write does: :func:`needle_core.io.atomic_write_bytes`)."""
    from .io import atomic_write_bytes

    return atomic_write_bytes(path, data)
