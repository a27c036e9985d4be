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
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from .io import atomic_write_text

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


def execute(notebook_path: str | Path, output_path: str | Path | None = None, parameters: dict | None = None,
            *, kernel_name: str = KERNEL, cwd: str | Path = REPO, progress: bool = False) -> Path:
    """Run ``notebook_path`` with papermill and write the executed copy to ``output_path``
    (default: ``book/<same name>``), atomically; return that path.

    ``parameters`` are injected after the cell tagged ``parameters``.  The kernel runs in
    ``cwd`` (the repository root).  Papermill's cell-by-cell progress goes to a temporary
    file outside the book; when a cell fails, ``PapermillExecutionError`` is raised, the copy
    in ``book/`` is left as it was and the partly executed notebook is kept for reading (its
    path is in the message).
    """
    import papermill

    notebook_path = Path(notebook_path).resolve()
    output_path = (BOOK / notebook_path.name) if output_path is None else Path(output_path).resolve()
    check_kernel(kernel_name)
    work = Path(tempfile.mkdtemp(prefix=f"needle-{notebook_path.stem}-"))
    partial = work / notebook_path.name
    try:
        nb = papermill.execute_notebook(
            str(notebook_path), str(partial), parameters=dict(parameters or {}), kernel_name=kernel_name,
            cwd=str(cwd), progress_bar=progress, log_output=False)
    except BaseException as err:
        note = f"needle_core.book: {notebook_path.name} failed; partly executed copy: {partial}"
        if hasattr(err, "add_note"):  # Python >= 3.11
            err.add_note(note)
        else:
            print(note, file=sys.stderr)
        raise
    # Record repository-relative paths, not this machine's temporary file.
    nb.metadata.papermill["input_path"] = _relative(notebook_path)
    nb.metadata.papermill["output_path"] = _relative(output_path)
    atomic_write_text(output_path, nbformat.writes(nb) + "\n")
    os.chmod(output_path, 0o644)  # the temporary file it was renamed from was private
    shutil.rmtree(work, ignore_errors=True)
    return output_path


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


def execute_all(profile: str, notebooks_dir: str | Path = NOTEBOOKS, book_dir: str | Path = BOOK, *,
                results_dir: str | Path | None = None, overrides: dict | None = None, **kwargs) -> list[Path]:
    """Execute every notebook of ``notebooks_dir`` (sorted by name) into ``book_dir``.

    Each notebook is offered ``profile`` (and ``results_dir``, the sweep's result store, and
    ``overrides``, the config fields changed from the profile, when given) and gets those its
    ``parameters`` cell defines; the others run with their defaults.  Extra keyword
    arguments go to :func:`execute`.  Returns the executed copies.
    """
    offered = {"profile": profile}
    if results_dir is not None:
        offered["results_dir"] = str(results_dir)
    if overrides:
        offered["overrides"] = dict(overrides)
    return [execute(notebook, Path(book_dir) / notebook.name, notebook_parameters(notebook, **offered), **kwargs)
            for notebook in sorted(Path(notebooks_dir).glob("*.ipynb"))]


def notebook_parameters(notebook_path: str | Path, **offered) -> dict:
    """The items of ``offered`` that the notebook's ``parameters`` cell defines, e.g.
    ``{"profile": "cpu"}`` for a notebook that defines ``profile``, ``{}`` for one that does not."""
    declared = parameters_of(notebook_path)
    return {name: value for name, value in offered.items() if name in declared}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m needle_core.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to execute (default: all of notebooks/)")
    parser.add_argument("--profile", default="smoke", help="passed to notebooks whose parameters define `profile`")
    parser.add_argument("--refresh-checked", action="store_true",
                        help="then copy the outputs of the cells nbval checks into the source notebooks")
    args = parser.parse_args(argv)
    for source in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        path = execute(source, parameters=notebook_parameters(source, profile=args.profile), progress=True)
        print(f"wrote {_relative(path)}")
        if args.refresh_checked:
            print(f"{source}: {refresh_checked_outputs(source, path)} checked cell(s) changed")


if __name__ == "__main__":
    main()
