"""What every figure notebook does first, in one call; and the repository's address.

A notebook of the book starts with::

    try:
        import needle_core
    except ImportError:  # e.g. on Colab
        %pip install -q "needle_core @ git+https://github.com/needle-repro/needle"
        import needle_core
    from needle_core.notebook import start, results_root
    start()

:func:`start` makes the notebook run the same way wherever it is opened: from a clone
(``jupyter notebook`` in ``notebooks/``, nbval, papermill from the root) it works from the
repository root, so ``runs/<profile>`` and ``data/`` are the same folders either way; with
only the package installed (Colab) it works from the current folder.  :func:`results_root`
finds a sweep's result store: the folder given, or the published copy shipped with the
repository (``runs/cpu`` ...), fetched from :data:`REPOSITORY` when the package is installed
without a clone and no local copy is there.

:data:`REPOSITORY` is the one place that holds the repository's address: ``_config.yml``'s
repository URL, the book's Colab buttons and every notebook's install line derive from it
(``tests/test_book.py`` checks that they agree).  This module imports nothing heavy: it must
work in a bare environment with only the package and torch.
"""
from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

#: The repository (a placeholder until it is public): change it here, then run
#: ``python -m needle_core.book --sync-links`` to rewrite ``_config.yml`` and the notebooks.
REPOSITORY = "https://github.com/needle-repro/needle"
#: The branch the book's buttons and the published results point at.
BRANCH = "main"
#: Where the book's sources sit in the repository (the Colab buttons open ``book/<page>.ipynb``).
PATH_TO_BOOK = "book"
#: The line of every notebook that installs the package where it is missing.
INSTALL = f'%pip install -q "needle_core @ git+{REPOSITORY}"'
#: The result stores committed to the repository (tidy tables and provenance, no checkpoints);
#: the same folders as the ``!runs/...`` lines of ``.gitignore``.
PUBLISHED = ("runs/cpu", "runs/cpu-lr", "runs/converged", "runs/converged-low-lr")


def colab_url(notebook: str) -> str:
    """The address that opens ``book/<notebook>`` of :data:`REPOSITORY` on Colab (what the
    book's Colab button of that page links to)."""
    owner_name = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{BRANCH}/{PATH_TO_BOOK}/{notebook}"


def archive_url() -> str:
    """The tarball of :data:`BRANCH` of :data:`REPOSITORY` (GitHub's archive address)."""
    return f"{REPOSITORY}/archive/refs/heads/{BRANCH}.tar.gz"


def checkout_root(start: str | Path | None = None) -> Path | None:
    """The root of the clone of this repository that ``start`` (default: the current folder)
    lies in, or None (e.g. on Colab, with only the package installed)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "needle_core" / "__init__.py").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    return None


def start(quiet: bool = False) -> float:
    """Set a notebook up; return the ``time.perf_counter()`` it started at.

    In a clone, work from the repository root (nbval starts the kernel in ``notebooks/``,
    papermill in the root); elsewhere stay where the notebook runs.  Apply the book's figure
    style (:func:`needle_core.plots.use_style`) with figures drawn at twice their pixel size
    (``retina``: sharp on HiDPI screens, the book shows them at their size), silence tqdm's
    "no widgets" warning, and print the versions of needle_core and torch.
    """
    began = time.perf_counter()
    root = checkout_root()
    if root is not None and Path.cwd().resolve() != root:
        os.chdir(root)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no widgets
    import torch

    import needle_core
    from . import plots

    plots.use_style()
    try:  # figures at twice their pixel size, shown at their size: sharp on HiDPI screens
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("retina")
    except ImportError:
        pass
    if not quiet:
        print(f"needle_core {needle_core.__version__}, torch {torch.__version__}")
    return began


def results_root(path: str | Path, fetch: bool = True) -> Path:
    """The result store at ``path`` (relative to the working folder, e.g. ``runs/cpu``).

    When it is missing, outside a clone, and it is one of the stores the repository publishes
    (:data:`PUBLISHED`), its tables are fetched from :data:`REPOSITORY` into ``path`` first,
    so that a notebook opened on Colab re-plots the published results instead of retraining.
    When there is nothing to fetch (another store, no network, a placeholder address) the
    store stays missing and the sweep trains it.
    """
    path = Path(path)
    if path.exists() or not fetch or checkout_root() is not None:
        return path
    name = path.as_posix().rstrip("/")
    if name not in PUBLISHED:
        return path
    try:
        fetch_published(name, path)
        print(f"fetched the published results {name} from {REPOSITORY}")
    except (OSError, tarfile.TarError, ValueError) as err:
        print(f"the published results {name} could not be fetched from {REPOSITORY} ({err}): "
              "the sweep will train them.", file=sys.stderr)
    return path


def fetch_published(name: str, dest: str | Path, url: str | None = None, timeout: float = 60) -> Path:
    """Download :func:`archive_url` (or ``url``: a ``.tar.gz`` of the repository, a local
    file path works too) and extract the published store ``name`` (e.g. ``runs/cpu``)
    into ``dest``: its tables and JSON files only, nothing outside it."""
    url = url or archive_url()
    if "://" in url:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    else:
        data = Path(url).read_bytes()
    dest = Path(dest)
    work = Path(tempfile.mkdtemp(prefix="needle-results-", dir=dest.parent if dest.parent.exists() else None))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            found = 0
            for member in archive.getmembers():
                parts = Path(member.name).parts  # <repo>-<branch>/runs/cpu/...
                inner = Path(*parts[1:]) if len(parts) > 1 else Path()
                if not member.isfile() or not inner.as_posix().startswith(name.rstrip("/") + "/"):
                    continue
                if inner.suffix not in (".parquet", ".json") or ".." in inner.parts:
                    continue
                target = work / inner.relative_to(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
                found += 1
        if not found:
            raise ValueError(f"{url} holds no {name}/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


# --- Checked outputs that hold on every machine ----------------------------------------------
#
# nbval compares the printed output of the cells marked ``# NBVAL_CHECK_OUTPUT`` character by
# character.  Exact checks are kept for what is the same everywhere (counts, statuses,
# parameter counts, δ = 0 at the switch, the embedding's exactness); a trained number is
# compared with its reference value within a tolerance, and the cell prints the reference and
# the verdict, not the number, so that the output changes only when a number leaves its band.

#: Tolerance of a trained accuracy (a mean over the smoke profile's seeds, or a difference of
#: two): 4x the largest spread measured (0.005: one test image in 200 of one seed's FCN)
#: between the smoke sweep as it is, with every initial weight nudged by one ulp (4 draws) and
#: under ``ATEN_CPU_CAPABILITY=avx2`` (``python -m needle_core.book --spread 4``).
ACCURACY_TOLERANCE = 0.02
#: Tolerance of a final deviation δ (δ_loc, δ_ws) of the smoke profile: 6x the largest spread
#: measured the same way (3.1e-4).  (On the machine of the measurement, avx2 and avx512 kernels
#: gave identical smoke results; the one-ulp nudges moved two single runs by 1 and 5 test
#: images, the seed means by at most 0.005.)
DEVIATION_TOLERANCE = 0.002
#: Tolerance of a landscape barrier of the smoke profile (nats of training loss, the mean over
#: its two seeds; page 6): 7x the largest spread measured (0.0028) between the smoke sweep and
#: its landscape as they are and retrained and re-measured under ``ATEN_CPU_CAPABILITY=avx2``,
#: once as they are (the means moved by at most 6e-5) and once with every initial weight nudged
#: by one ulp (``measure_spread``, one draw: 0.0028, single seeds up to 0.0055).  One draw
#: only, hence the wider factor; the barriers checked are 0 to 0.4, so a broken path or barrier
#: still shows.
BARRIER_TOLERANCE = 0.02


def at_defaults(profile: str, overrides: dict | None = None, default_profile: str = "smoke") -> bool:
    """Whether a notebook runs at its defaults (the profile nbval checks, no overrides): only
    then do the reference values of its checked cell apply."""
    return profile == default_profile and not overrides


def check_close(values: dict, reference: dict, tolerance: float, digits: int = 3) -> bool:
    """Print, for each key of ``reference``, ``key: reference ± tolerance ok`` when
    ``values[key]`` lies within ``tolerance`` of it, else the value and ``OUT OF RANGE`` (or
    ``missing``); and the keys of ``values`` that have no reference.  Return whether all hold."""
    good = True
    for key, expected in reference.items():
        value = values.get(key)
        if value is None:
            print(f"{key}: missing")
            good = False
        elif abs(value - expected) <= tolerance + 1e-12:
            print(f"{key}: {expected:.{digits}f} ± {tolerance:g} ok")
        else:
            print(f"{key}: {value:.{digits}f}, OUT OF RANGE {expected:.{digits}f} ± {tolerance:g}")
            good = False
    for key in values:
        if key not in reference:
            print(f"{key}: {values[key]:.{digits}f}, no reference value")
            good = False
    return good


def check_order(values: dict, *chains: tuple) -> bool:
    """Print each ordering ``a > b > ...`` of keys of ``values`` and whether it holds
    (orderings that must hold on every machine, e.g. "CNN > FCN")."""
    good = True
    for chain in chains:
        holds = all(values[a] > values[b] for a, b in zip(chain, chain[1:]))
        print(f"{' > '.join(chain)}: {holds}")
        good &= holds
    return good
