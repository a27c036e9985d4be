"""Execute the figure notebooks into the book.

The sources live in ``notebooks/`` (committed without outputs, except the reference output of
the cell nbval checks); the executed copies live in ``book/`` and are what the book renders
(``execute_notebooks: 'off'`` in ``_config.yml``)::

    python -m needle_core reproduce --profile smoke     # the sweeps, then every notebook
    python -m needle_core.book --profile smoke          # every notebook of notebooks/
    python -m needle_core.book notebooks/01_embedding.ipynb --refresh-checked

Each notebook runs with papermill in a ``python3`` kernel, in the repository root, and its
executed copy replaces the one in ``book/`` atomically: a reader (or a book build) sees the
old copy or the new one, never half of one, and a failed run leaves the old copy in place.

The parameters injected into an executed copy are portable (:func:`portable`): paths are
written relative to the repository root, and a path outside it is refused, because the
executed copies are what the book shows and what its Colab buttons open.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from .config import shared_overrides
from .io import atomic_write_text
from .notebook import INSTALL, REPOSITORY, colab_url  # noqa: F401  (the repository's address lives there)

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"
KERNEL = "python3"


def check_kernel(kernel_name: str = KERNEL) -> None:
    """Raise unless Jupyter's ``kernel_name`` kernel runs this very Python (``sys.executable``).

    jupyter_client starts ``python``/``python3`` specs with ``sys.executable``, which is what
    the spec ipykernel installs in a virtual environment says; a spec naming another Python
    would run the notebooks against other packages.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise RuntimeError(f"no Jupyter kernel named {kernel_name!r}: run "
                           f"`{sys.executable} -m ipykernel install --sys-prefix`.") from None
    exe = spec.argv[0]
    here = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}
    if exe in here or os.path.abspath(exe) == os.path.abspath(sys.executable):
        return
    raise RuntimeError(f"the Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {exe}, not this Python "
                       f"({sys.executable}): run `{sys.executable} -m ipykernel install --sys-prefix` "
                       "or remove that kernel spec.")


def parameters_of(notebook_path: str | Path) -> dict:
    """The parameters a notebook declares in its cell tagged ``parameters`` (name -> papermill's
    description: default value, inferred type, help)."""
    import papermill

    return papermill.inspect_notebook(str(notebook_path))


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def portable(value, base: str | Path = REPO):
    """``value`` (a parameter: a string, a path, or a dict or list of them) with every absolute
    path (``/x/y``, ``~/y``, ``folder:/x/y``) written relative to ``base`` (where the notebook
    runs); ``ValueError`` for one outside ``base``, which would name a folder of this machine
    in the book and not exist where the page is opened again (Colab, another clone)."""
    if isinstance(value, dict):
        return {key: portable(item, base) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(item, base) for item in value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return value
    prefix = "folder:" if value.startswith("folder:") else ""
    path = value[len(prefix):]
    if not (os.path.isabs(path) or path.startswith("~")):
        return value
    absolute, base = Path(path).expanduser().resolve(), Path(base).resolve()
    if not absolute.is_relative_to(base):
        raise ValueError(f"parameter value {value!r} is a path outside {base}: the executed notebook would "
                         f"carry this machine's path into the book. Put it under {base} (e.g. a link in data/) "
                         f"and pass it relative to that folder.")
    return prefix + absolute.relative_to(base).as_posix()


def execute(notebook_path: str | Path, output_path: str | Path | None = None, parameters: dict | None = None,
            *, kernel_name: str = KERNEL, cwd: str | Path = REPO, progress: bool = False) -> Path:
    """Run ``notebook_path`` with papermill and write the executed copy to ``output_path``
    (default: ``book/<same name>``), atomically; return that path.

    ``parameters`` are injected after the cell tagged ``parameters``, made :func:`portable`
    (relative to ``cwd``).  The kernel runs in ``cwd`` (the repository root).  Papermill's cell-by-cell progress goes to a temporary
    file outside the book; when a cell fails, ``PapermillExecutionError`` is raised, the copy
    in ``book/`` is left as it was and the partly executed notebook is kept for reading (its
    path is in the message).
    """
    import papermill

    notebook_path = Path(notebook_path).resolve()
    output_path = (BOOK / notebook_path.name) if output_path is None else Path(output_path).resolve()
    parameters = portable(dict(parameters or {}), cwd)
    check_kernel(kernel_name)
    work = Path(tempfile.mkdtemp(prefix=f"needle-{notebook_path.stem}-"))
    partial = work / notebook_path.name
    try:
        nb = papermill.execute_notebook(
            str(notebook_path), str(partial), parameters=parameters, kernel_name=kernel_name,
            cwd=str(cwd), progress_bar=progress, log_output=False)
    except BaseException as err:
        note = f"needle_core.book: {notebook_path.name} failed; partly executed copy: {partial}"
        if hasattr(err, "add_note"):  # Python >= 3.11
            err.add_note(note)
        else:
            print(note, file=sys.stderr)
        raise
    # One folded code bar above the page's content: the parameters it ran with (the injected
    # cell); the notebook's defaults they override are removed from the page (the source keeps
    # them, for Colab).
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:  # folded; a fixed id (papermill draws one at random)
            cell.metadata["tags"] = [*tags, "hide-cell"] if "hide-cell" not in tags else tags
            cell["id"] = "injected-parameters"
        elif "parameters" in tags and injected:
            cell.metadata["tags"] = [t for t in tags if t not in ("hide-cell", "remove-cell")] + ["remove-cell"]
    chapter, before = chapters().get(output_path.stem, (None, []))
    number_tables(nb, chapter, 1 + sum(tables_of(output_path.parent / f"{page}.ipynb") for page in before))
    # Record repository-relative paths, not this machine's temporary file.
    nb.metadata.papermill["input_path"] = _relative(notebook_path)
    nb.metadata.papermill["output_path"] = _relative(output_path)
    atomic_write_text(output_path, nbformat.writes(nb) + "\n")
    os.chmod(output_path, 0o644)  # the temporary file it was renamed from was private
    shutil.rmtree(work, ignore_errors=True)
    return output_path


def chapters(toc: str | Path = BOOK / "_toc.yml") -> dict[str, tuple[str, list[str]]]:
    """The chapter of each page of the book's numbered parts and the pages of that chapter
    before it: ``{"03_switch_time": ("3", []), "03_switch_time_lr": ("3", ["03_switch_time"]),
    ...}`` (chapters count from 1 in each numbered part; a chapter's section pages share its
    number, as Sphinx numbers their figures: "Fig. 3.2" on page 3b)."""
    import yaml

    out = {}
    for part in yaml.safe_load(Path(toc).read_text()).get("parts", []):
        if not part.get("numbered"):
            continue
        for i, chapter in enumerate(part.get("chapters", []), 1):
            pages = [chapter["file"]] + [section["file"] for section in chapter.get("sections", [])]
            out |= {page: (str(i), pages[:k]) for k, page in enumerate(pages)}
    return out


_CAPTION = re.compile(r"<caption>(.*?)</caption>", re.S)


def _html_outputs(nb: nbformat.NotebookNode):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text/html" in output.get("data", {}):
                yield output["data"]


def number_tables(nb: nbformat.NotebookNode, chapter: str | None, first: int = 1) -> int:
    """Prefix the caption of every captioned table the page displays with its number, "Table
    3.2: ...": the chapter's number, then the table's rank in the chapter (``first`` for the
    page's first table: 1 + the tables of the chapter's earlier pages), as Sphinx numbers the
    figures (it cannot number raw HTML tables).  Pages outside the numbered parts (``chapter``
    None) keep their captions.  Returns how many tables the page numbered."""
    if chapter is None:
        return 0
    count = 0

    def numbered(match: re.Match) -> str:
        nonlocal count
        count += 1
        return f"<caption>Table {chapter}.{first + count - 1}: {match.group(1)}</caption>"

    for data in _html_outputs(nb):
        html = data["text/html"]
        data["text/html"] = _CAPTION.sub(numbered, html if isinstance(html, str) else "".join(html))
    return count


def tables_of(path: Path) -> int:
    """How many captioned tables the executed page at ``path`` shows (0 if it is not there)."""
    if not path.exists():
        return 0
    nb = nbformat.read(path, as_version=4)
    return sum(len(_CAPTION.findall(str(d["text/html"]))) for d in _html_outputs(nb))


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def refresh_checked_outputs(notebook_path: str | Path, executed_path: str | Path | None = None) -> int:
    """Copy the outputs of the cells nbval checks (first line ``# NBVAL_CHECK_OUTPUT``) from
    the executed copy (default: ``book/<same name>``) into the source notebook, which keeps
    no other output; return how many cells were updated.  Run it when a checked number
    changes on purpose, and review the diff."""
    notebook_path = Path(notebook_path)
    executed = nbformat.read(executed_path or BOOK / notebook_path.name, as_version=4)
    runs = {c.get("id"): c for c in executed.cells if c.cell_type == "code"}
    nb = nbformat.read(notebook_path, as_version=4)
    updated = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        checked = cell.source.lstrip().startswith(CHECK_MARK)
        if checked and cell.get("id") not in runs:
            raise ValueError(f"cell {cell.get('id')!r} of {notebook_path} is not in the executed copy.")
        run = runs[cell.get("id")] if checked else None
        new = run.outputs if checked else []
        merged = []
        for output in new:  # one output per stream, as nbval compares them
            if output.get("output_type") == "execute_result":
                output["execution_count"] = None
            if merged and output.get("output_type") == "stream" == merged[-1].get("output_type") \
                    and output.get("name") == merged[-1].get("name"):
                merged[-1]["text"] += output["text"]
            else:
                merged.append(output)
        new = merged
        updated += checked and cell.outputs != new
        # nbval only compares cells that ran (an execution count) and have outputs
        cell.outputs, cell.execution_count = new, (run.execution_count if checked else None)
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
    atomic_write_text(notebook_path, nbformat.writes(nb) + "\n")
    return updated


#: The pages this edition of the book renders with each run profile (the others, with their
#: smoke defaults): ``reproduce --profile P`` re-executes exactly these.  Each page maps to what
#: it takes besides the profile's own parameters: ``source``, the notebook it is made from when
#: that is not the page itself (a copy then gets figure labels of its own, :func:`relabel`),
#: ``title``, its heading on this page (:func:`retitle`), and any parameter of that notebook (``None``: left to its
#: default).  The CPU campaign has no eLCN branches and one n_train, so pages 5 and 7 stay on
#: smoke; page 6 shows the landscape measurements it stores (``python -m needle_core
#: landscape``, t_w 2, 8, 16); its second arm (``cpu-lr``: lr lowered at the switch, with the
#: controlled CNN) gets page 3 again, read-only (it is swept by its own command), and joins
#: claim 5 on the scorecard.  The converged edition (the book's main one, still training) gets
#: the scorecard, its Findings, pages 2 to 4 (page 3 for each arm) and page 6b, read as they stand
#: (``in_progress``: verdicts pending until every pre-registered run, and every curve claim 6 reads, has landed); the
#: 20-epoch edition's pages are titled as the early-training regime.  Arm 1 of the converged
#: edition has 5 seeds, of which the registered verdicts read 0-2 (``overrides``, merged with the
#: offered ones); the scorecard and Findings show the amendment's 5-seed reading beside them
#: (``amendment``, book/preregistration.md).
ARM1_REGISTERED = {"seeds": [0, 1, 2]}
ARM1_AMENDMENT = {"seeds": [0, 1, 2, 3, 4]}
EDITION = {"cpu": {"02_training_curves": {"title": "Training curves, 20-epoch edition (early training)"},
                   "03_switch_time": {"title": "Accuracy against the switch time, 20-epoch edition (arm 1)"},
                   "03_switch_time_lr": {"source": "03_switch_time", "profile": "cpu-lr", "results_dir": None,
                                         "train": False,
                                         "title": "The same, learning rate lowered at the switch (20-epoch, arm 2)"},
                   "04_deviation": {"title": "Deviation from the CNN subspace, 20-epoch edition"},
                   "06_landscape": {"title": "The loss landscape, 20-epoch edition: straight lines and strings"},
                   "scorecard": {"second_arm": "cpu-lr",
                                 "title": "Scorecard of the 20-epoch edition (the early-training regime)"},
                   "findings": {"second_arm": "cpu-lr",
                                "title": "Findings of the 20-epoch edition (the early-training regime)"}},
           "converged": {"scorecard_converged": {"source": "scorecard", "second_arm": "converged-low-lr",
                                                 "in_progress": True, "other_edition": "cpu",
                                                 "overrides": ARM1_REGISTERED, "amendment": ARM1_AMENDMENT,
                                                 "other_second_arm": "cpu-lr",
                                                 "title": "Scorecard: which claims reproduce (converged edition)"},
                         "findings_converged": {"second_arm": "converged-low-lr", "in_progress": True,
                                                "overrides": ARM1_REGISTERED, "amendment": ARM1_AMENDMENT},
                         "02_training_curves_converged": {"source": "02_training_curves", "in_progress": True,
                                                          "overrides": ARM1_REGISTERED,
                                                          "title": "Training curves around the switch"},
                         "03_switch_time_converged": {"source": "03_switch_time", "in_progress": True,
                                                      "overrides": ARM1_REGISTERED,
                                                      "title": "Accuracy against the switch time (arm 1: the "
                                                               "paper's protocol)"},
                         "03_switch_time_converged_low_lr": {
                             "source": "03_switch_time", "profile": "converged-low-lr", "results_dir": None,
                             "train": False, "in_progress": True,
                             "title": "The same at lr 0.05 throughout (arm 2)"},
                         "04_deviation_converged": {"source": "04_deviation", "in_progress": True,
                                                    "overrides": ARM1_REGISTERED,
                                                    "title": "Deviation from the CNN subspace"},
                         "06_curves": {"in_progress": True, "overrides": ARM1_REGISTERED}}}


def edition_page(profile: str, source: str) -> str:
    """The book page that renders notebook ``source`` with ``profile`` (its name in
    :data:`EDITION`, e.g. ``03_switch_time`` -> ``03_switch_time_converged``), or ``source``
    where the profile renders it under its own name or has no edition."""
    for name, spec in EDITION.get(profile, {}).items():
        if spec.get("source", name) == source and spec.get("profile", profile) == profile:
            return name
    return source


def execute_all(profile: str, notebooks_dir: str | Path = NOTEBOOKS, book_dir: str | Path = BOOK, *,
                results_dir: str | Path | None = None, overrides: dict | None = None, train: bool = True,
                **kwargs) -> list[Path]:
    """Execute the notebooks of ``notebooks_dir`` into ``book_dir``: the pages :data:`EDITION`
    renders with ``profile`` (in its order), or every notebook (sorted by name) for a profile it
    does not list.

    Each notebook is offered ``profile`` (and ``results_dir``, the sweep's result store,
    ``overrides``, the config fields changed from the profile, when given, and ``train``:
    False to read only the runs the store has), then the page's own parameters of the
    edition (a page of another profile keeps only the shared overrides,
    :func:`~needle_core.config.shared_overrides`), and gets
    those its ``parameters`` cell defines; the others run with their defaults.  Extra keyword
    arguments go to :func:`execute`.  Returns the executed copies.
    """
    offered = {"profile": profile, "train": train}
    if results_dir is not None:
        offered["results_dir"] = results_dir  # made relative by execute()
    if overrides:
        offered["overrides"] = dict(overrides)
    pages = EDITION.get(profile) or {p.stem: {} for p in sorted(Path(notebooks_dir).glob("*.ipynb"))}
    out = []
    for page, own in pages.items():
        own = dict(own)
        source, title = own.pop("source", page), own.pop("title", None)
        notebook = Path(notebooks_dir) / f"{source}.ipynb"
        asked = {k: v for k, v in (offered | own).items() if v is not None}
        if "overrides" in own:  # a page's own fields (its registered seeds) join the offered ones
            asked["overrides"] = dict(offered.get("overrides", {})) | own["overrides"]
        if asked["profile"] != profile and "overrides" in asked:
            asked["overrides"] = shared_overrides(asked["overrides"])
        path = execute(notebook, Path(book_dir) / f"{page}.ipynb", notebook_parameters(notebook, **asked), **kwargs)
        if source != page or title:  # a second page of one notebook (its labels renamed), or a page retitled
            nb = nbformat.read(path, as_version=4)
            nb = relabel(nb, page[len(source):].strip("_"), title) if source != page else retitle(nb, title)
            atomic_write_text(path, nbformat.writes(nb) + "\n")
        out.append(path)
    return out


def relabel(nb: nbformat.NotebookNode, suffix: str, title: str | None = None) -> nbformat.NotebookNode:
    """A second page made from one notebook (labels are global to the book): every figure
    name ``fig-x`` becomes ``fig-x-<suffix>``, in the cells' metadata and in the Markdown that
    refers to it, and the first heading becomes ``# <title>`` when given."""
    renamed = {}
    for cell in nb.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if "name" in figure:
            renamed[figure["name"]] = figure["name"] = f"{figure['name']}-{suffix}"
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for old, new in renamed.items():
            cell.source = cell.source.replace(f"`{old}`", f"`{new}`")
    return retitle(nb, title)


def retitle(nb: nbformat.NotebookNode, title: str | None) -> nbformat.NotebookNode:
    """The first heading ``# ...`` of ``nb`` becomes ``# <title>`` (None: unchanged)."""
    for cell in nb.cells:
        if title is not None and cell.cell_type == "markdown" and cell.source.startswith("# "):
            _, newline, rest = cell.source.partition("\n")
            cell.source = f"# {title}{newline}{rest}"
            break
    return nb


def notebook_parameters(notebook_path: str | Path, **offered) -> dict:
    """The items of ``offered`` that the notebook's ``parameters`` cell defines, e.g.
    ``{"profile": "cpu"}`` for a notebook that defines ``profile``, ``{}`` for one that does not."""
    declared = parameters_of(notebook_path)
    return {name: value for name, value in offered.items() if name in declared}


_INSTALL_LINE = re.compile(r'%pip install (?:-q )?"needle_core @ git\+[^"]*"')
_INSTALL_JSON = re.compile(r'%pip install -q \\"needle_core @ git\+[^"\\]*\\"')
_CONFIG_URL = re.compile(r"^(repository:\n(?:[ \t].*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)
_CONFIG_BRANCH = re.compile(r"^(repository:\n(?:[ \t].*\n)*?[ \t]+branch:[ \t]*)(\S+)", re.M)
_CONFIG_BOOK = re.compile(r"^(repository:\n(?:[ \t].*\n)*?[ \t]+path_to_book:[ \t]*)(\S+)", re.M)


def link_files(repo: Path = REPO) -> list[Path]:
    """The files that carry the repository's address: ``_config.yml``, the notebooks (sources
    and executed copies, their install line) and the book's Markdown pages."""
    return [repo / "_config.yml", *sorted((repo / "notebooks").glob("*.ipynb")), *sorted((repo / "book").glob("*.ipynb")),
            *sorted((repo / "book").glob("*.md")), repo / "README.md"]


def sync_links(repo: Path = REPO, check: bool = False) -> list[Path]:
    """Write :data:`needle_core.notebook.REPOSITORY` (and its branch and book folder) into every
    file of :func:`link_files`: ``_config.yml``'s ``repository:`` section (from which Jupyter
    Book draws the repository and Colab buttons) and every ``%pip install`` line.  Return the
    files that were (``check=True``: that would be) changed."""
    from .notebook import BRANCH, PATH_TO_BOOK

    changed = []
    for path in link_files(repo):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".ipynb":  # JSON: the line sits in a string, its quotes escaped
            new = _INSTALL_JSON.sub(lambda m: INSTALL.replace('"', '\\"'), text)
        else:
            new = _INSTALL_LINE.sub(lambda m: INSTALL, text)
        if path.name == "_config.yml":
            new = _CONFIG_URL.sub(lambda m: m.group(1) + REPOSITORY, new)
            new = _CONFIG_BRANCH.sub(lambda m: m.group(1) + BRANCH, new)
            new = _CONFIG_BOOK.sub(lambda m: m.group(1) + PATH_TO_BOOK, new)
        if new != text:
            changed.append(path)
            if not check:
                atomic_write_text(path, new)
    return changed


def measure_spread(profile: str = "smoke", replicates: int = 4, overrides: dict | None = None,
                   workdir: str | Path | None = None):
    """The profile's sweep trained ``replicates + 1`` times: as it is, then with every initial
    weight nudged by one ulp (up or down at random, a different draw each time); returns the
    tidy results of all of them, with a ``replicate`` column (0: not nudged).

    This is the spread that last-bit differences between machines (BLAS and convolution
    kernels, CPU capabilities, thread counts) can cause: the tolerances of the trained numbers
    that the notebooks check (``# NBVAL_CHECK_OUTPUT``) are sized from it
    (``python -m needle_core.book --spread 4``).
    """
    import pandas as pd
    import torch

    from . import run as run_module
    from .config import make_config
    from .sweep import Sweep

    config = make_config(profile, overrides)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="needle-spread-"))
    frames = []
    built = run_module.cnn, run_module.fcn
    try:
        for replicate in range(replicates + 1):
            if replicate:
                draw = torch.Generator().manual_seed(replicate)  # not the global generator: init unchanged

                def nudged(build):
                    def make(*args, **kwargs):
                        model = build(*args, **kwargs)
                        with torch.no_grad():
                            for p in model.parameters():
                                up = torch.rand(p.shape, generator=draw) < 0.5
                                p.copy_(torch.nextafter(p, torch.where(up, torch.inf, -torch.inf).to(p.dtype)))
                        return model
                    return make

                run_module.cnn, run_module.fcn = nudged(built[0]), nudged(built[1])
            frame = Sweep(config, workdir / f"replicate-{replicate}").run(progress=False)
            frames.append(frame.assign(replicate=replicate))
            run_module.cnn, run_module.fcn = built
    finally:
        run_module.cnn, run_module.fcn = built
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m needle_core.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to execute (default: all of notebooks/)")
    parser.add_argument("--profile", default="smoke", help="passed to notebooks whose parameters define `profile`")
    parser.add_argument("--refresh-checked", action="store_true",
                        help="then copy the outputs of the cells nbval checks into the source notebooks")
    parser.add_argument("--sync-links", action="store_true",
                        help="only write needle_core.notebook.REPOSITORY into _config.yml and every install line")
    parser.add_argument("--spread", type=int, metavar="N",
                        help="only measure the spread of the profile's trained numbers under N one-ulp "
                             "nudges of the initial weights (measure_spread); write it to --out")
    parser.add_argument("--out", default="spread.parquet", help="where --spread writes its table")
    args = parser.parse_args(argv)
    if args.spread is not None:
        measure_spread(args.profile, args.spread).to_parquet(args.out)
        print(f"wrote {args.out}")
        return
    if args.sync_links:
        for path in sync_links():
            print(f"updated {_relative(path)}")
        return
    for source in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        path = execute(source, parameters=notebook_parameters(source, profile=args.profile), progress=True)
        print(f"wrote {_relative(path)}")
        if args.refresh_checked:
            print(f"{source}: {refresh_checked_outputs(source, path)} checked cell(s) changed")


if __name__ == "__main__":
    main()
