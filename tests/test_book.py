"""The book: it builds strictly (warnings are errors), and its pages work in a real browser.

The build runs exactly the README's command, ``jupyter-book build book --warningiserror``
from the repository root, with ``--path-output`` pointing to a temporary folder so the test
neither needs nor touches ``_build/``.  The browser test serves that build on 127.0.0.1 and
drives Debian's headless Chromium (``make browser`` installs it) with Playwright: every page
of the table of contents loads, every image decodes, every internal link answers 200 (and
its #anchor exists), no page asks for anything outside 127.0.0.1 (the book works offline),
and a screenshot of each page goes to ``screenshots/`` (ignored by git).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "screenshots"


def _skip_or_fail(reason: str):
    """Skip locally, fail in CI: CI must run every check."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """``(completed process, seconds, html folder)`` of one strict build of the book."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jupyter_book), "build", "book", "--warningiserror", "--keep-going", "--path-output", str(out)]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    return result, time.perf_counter() - start, out / "_build" / "html"


def toc_pages() -> list[str]:
    """The docnames of book/_toc.yml, in order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    return list(parse_toc_yaml(REPO / "book" / "_toc.yml"))


def test_book_builds_strictly(built_book):
    result, seconds, html = built_book
    assert result.returncode == 0, f"strict book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    missing = [page for page in toc_pages() if not (html / f"{page}.html").is_file()]
    assert not missing, f"pages of the toc missing from the build: {missing}"
    assert seconds < 600


def test_api_example_runs():
    """The example of book/api.md runs as printed."""
    text = (REPO / "book" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "api.md has no python example"
    for block in blocks:
        exec(compile(block, "book/api.md", "exec"), {})


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served_book(built_book):
    """Base URL of the built book, served on 127.0.0.1 at a free port for the test's duration."""
    result, _, html = built_book
    if result.returncode != 0:
        pytest.fail("the book did not build (see test_book_builds_strictly)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


_IMAGES = """async () => {
    const images = [...document.images];
    for (const img of images) { img.loading = "eager"; }
    await Promise.all(images.map(img => img.complete ? null :
        new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
    return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            return response.status, body.decode("utf-8", "replace") if url.endswith(".html") else ""
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_book_in_a_browser(served_book):
    if not CHROMIUM.exists():
        _skip_or_fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright Python package is not installed (requirements.txt)")
    SCREENSHOTS.mkdir(exist_ok=True)
    origin = urlparse(served_book).netloc
    problems: list[str] = []
    external: set[str] = set()
    fetched: dict[str, tuple[int, str]] = {}

    def route(route):
        url = route.request.url
        if urlparse(url).netloc == origin or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:  # the book must work offline: record and refuse anything else
            external.add(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.on("pageerror", lambda err: problems.append(f"{page.url}: JavaScript error: {err}"))
            page.on("console", lambda msg: msg.type == "error" and problems.append(f"{page.url}: console error: {msg.text}"))

            response = page.goto(f"{served_book}/index.html", wait_until="load")
            page.wait_for_url(f"**/{toc_pages()[0]}.html", timeout=10_000)  # index redirects to the root page

            for name in toc_pages():
                url = f"{served_book}/{name}.html"
                response = page.goto(url, wait_until="load")
                if response is None or response.status != 200:
                    problems.append(f"{url}: HTTP {response and response.status}")
                    continue
                for image in page.evaluate(_IMAGES):
                    if image["width"] == 0:
                        problems.append(f"{name}.html: image did not load: {image['src']}")
                links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
                for link in links:
                    if urlparse(link).netloc != origin:
                        continue  # external links (GitHub, Colab, arXiv) are not followed offline
                    target, anchor = urldefrag(link)
                    if target not in fetched:
                        fetched[target] = _fetch(target)
                    status, body = fetched[target]
                    if status != 200:
                        problems.append(f"{name}.html: link to {link} answers HTTP {status}")
                    elif anchor and body and not re.search(rf'id=["\']{re.escape(anchor)}["\']', body):
                        problems.append(f"{name}.html: link to {link}: no element with id {anchor!r}")
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        finally:
            browser.close()
    problems += [f"request outside 127.0.0.1 (the book must work offline): {url}" for url in sorted(external)]
    assert not problems, "\n".join(problems)
    assert len(fetched) > len(toc_pages())  # the link check did visit something


def _notebook(path: Path, parameters: str, body: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell(body)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def test_execute_all_passes_profile_only_to_notebooks_that_take_it(tmp_path):
    import nbformat

    from needle_core import book

    sources, out = tmp_path / "notebooks", tmp_path / "book"
    sources.mkdir()
    _notebook(sources / "02_b.ipynb", 'profile = "smoke"\nresults_dir = "runs/smoke"',
              "import os; print(profile, results_dir, os.getcwd())")
    _notebook(sources / "01_a.ipynb", "n = 1", "print(n)")
    paths = book.execute_all("paper", sources, out, results_dir="runs/paper", cwd=tmp_path)  # a profile the edition renders no page with: all
    assert [p.name for p in paths] == ["01_a.ipynb", "02_b.ipynb"]
    a, b = (nbformat.read(p, as_version=4) for p in paths)
    assert a.cells[-1].outputs[0].text == "1\n" and a.metadata.papermill.parameters == {}
    assert b.cells[-1].outputs[0].text == f"paper runs/paper {tmp_path}\n"  # injected parameters, cwd as asked
    assert b.metadata.papermill.parameters == {"profile": "paper", "results_dir": "runs/paper"}
    assert not list(out.glob(".*")), "temporary files left in the book folder"


def test_an_edition_renders_its_pages_with_their_own_parameters(tmp_path, monkeypatch):
    """A page of an edition may be another notebook's copy with other parameters (the second
    arm's page 3); a parameter set to None is left to the notebook's default."""
    import nbformat

    from needle_core import book

    sources, out = tmp_path / "notebooks", tmp_path / "book"
    sources.mkdir()
    source = _notebook(sources / "03_s.ipynb", 'profile = "smoke"\nresults_dir = None\noverrides = {}',
                       "print(profile, results_dir, overrides)")
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# 3 · Switch\n\nSee {numref}`fig-s`."))
    nb.cells[-1].metadata["mystnb"] = {"figure": {"name": "fig-s", "caption": "a figure"}}
    nbformat.write(nb, source)
    _notebook(sources / "04_t.ipynb", "n = 1", "print(n)")
    monkeypatch.setattr(book, "EDITION", {"cpu": {"03_s": {}, "03_s_lr": {"source": "03_s", "profile": "cpu-lr",
                                                                          "results_dir": None, "title": "3b · Again"}}})
    paths = book.execute_all("cpu", sources, out, results_dir="runs/cpu", cwd=tmp_path,
                             overrides={"dataset": "folder:d.tar.gz", "seeds": [0]})
    assert [p.name for p in paths] == ["03_s.ipynb", "03_s_lr.ipynb"]  # not 04_t: the edition lists it not
    first, second = (nbformat.read(p, as_version=4) for p in paths)
    assert first.cells[-1].outputs[0].text == "cpu runs/cpu {'dataset': 'folder:d.tar.gz', 'seeds': [0]}\n"
    assert second.cells[-1].outputs[0].text == "cpu-lr None {'dataset': 'folder:d.tar.gz'}\n"  # the data set only
    assert first.cells[0].source == "# 3 · Switch\n\nSee {numref}`fig-s`."  # the page itself is left as it is
    assert second.cells[0].source == "# 3b · Again\n\nSee {numref}`fig-s-lr`."
    assert second.cells[-1].metadata.mystnb.figure.name == "fig-s-lr"


def test_a_failed_execution_keeps_the_previous_copy(tmp_path):
    import papermill

    from needle_core import book

    source = _notebook(tmp_path / "03_fail.ipynb", "x = 1", "raise RuntimeError('boom')")
    previous = tmp_path / "book" / "03_fail.ipynb"
    previous.parent.mkdir()
    previous.write_text("the previous executed copy")
    with pytest.raises(papermill.PapermillExecutionError):
        book.execute(source, previous, {}, cwd=tmp_path)
    assert previous.read_text() == "the previous executed copy"
    assert sorted(p.name for p in previous.parent.iterdir()) == ["03_fail.ipynb"]


def test_committed_notebooks_match_the_book():
    """Every notebook of notebooks/ has its executed copy in book/ and its page in the toc;
    the sources carry no output except the reference outputs that nbval checks."""
    import nbformat

    from needle_core.book import CHECK_MARK

    sources = sorted((REPO / "notebooks").glob("*.ipynb"))
    pages = set(toc_pages())
    for source in sources:
        assert (REPO / "book" / source.name).is_file(), f"{source.name} was not executed into book/"
        assert source.stem in pages, f"{source.stem} is not in book/_toc.yml"
        for cell in nbformat.read(source, as_version=4).cells:
            if cell.cell_type == "code" and cell.outputs:
                assert cell.source.lstrip().startswith(CHECK_MARK), \
                    f"{source.name}: outputs committed in a cell nbval does not check"


def test_every_edition_page_is_in_the_book_and_made_from_a_notebook():
    """What ``reproduce --profile P`` renders is a page of the toc, committed in book/, made
    from a source notebook that defines every parameter the edition gives it."""
    from needle_core.book import EDITION, parameters_of

    pages = set(toc_pages())
    for profile, edition in EDITION.items():
        for page, own in edition.items():
            source = REPO / "notebooks" / f"{own.get('source', page)}.ipynb"
            assert page in pages and (REPO / "book" / f"{page}.ipynb").is_file(), (profile, page)
            assert source.is_file(), (profile, page, source.name)
            missing = set(own) - {"source", "title"} - set(parameters_of(source))
            assert not missing, f"{page} ({profile}): {source.name} has no parameter {missing}"


def test_a_claim_links_to_its_own_editions_page():
    """The converged scorecard's claim 4 is detailed on the converged page 3, never on the
    20-epoch page of the same notebook; a profile without an edition keeps the notebook's name;
    a page rendered with another profile (an edition's second arm) is not the claim's page."""
    from needle_core.book import edition_page

    assert edition_page("converged", "03_switch_time") == "03_switch_time_converged"
    assert edition_page("converged", "04_deviation") == "04_deviation_converged"
    assert edition_page("converged", "06_curves") == "06_curves"
    assert edition_page("converged", "01_embedding") == "01_embedding"
    assert edition_page("cpu", "03_switch_time") == "03_switch_time"
    assert edition_page("smoke", "03_switch_time") == "03_switch_time"
    assert edition_page("converged-low-lr", "03_switch_time") == "03_switch_time"
    pages = set(toc_pages())
    for profile in ("cpu", "converged"):
        for source in ("02_training_curves", "03_switch_time", "04_deviation"):
            assert edition_page(profile, source) in pages, (profile, source)


def test_every_page_shows_the_code_of_its_notebook():
    """Each executed copy in book/ ran exactly its source's code (the papermill cell of
    injected parameters aside): a source edited without re-rendering its pages (a copy made
    from another notebook included, e.g. page 3b) fails here."""
    import nbformat

    from needle_core.book import EDITION

    made_from = {page: own.get("source", page) for edition in EDITION.values() for page, own in edition.items()}
    for page in sorted((REPO / "book").glob("*.ipynb")):
        source = REPO / "notebooks" / f"{made_from.get(page.stem, page.stem)}.ipynb"
        code = [[c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                 and "injected-parameters" not in c.metadata.get("tags", [])] for path in (page, source)]
        assert code[0] == code[1], f"book/{page.name} was not re-rendered since {source.name} changed"


def test_figure_labels_are_unique_in_the_book():
    """Labels are global to the book: two pages with one figure name link each other's figure."""
    import nbformat

    names = [cell.metadata["mystnb"]["figure"]["name"] for path in sorted((REPO / "book").glob("*.ipynb"))
             for cell in nbformat.read(path, as_version=4).cells if "name" in cell.metadata.get("mystnb", {})
             .get("figure", {})]
    assert names and len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# --- No machine paths, one repository address, the citation files ---------------------------

#: Absolute paths of this machine that must never reach a page: this checkout, the virtual
#: environment, and the usual roots of local folders.
_LOCAL = re.compile(r"(?<![\w.~/-])/(?:work|tmp|home|root|Users|var/folders)/[\w.-]")


def _local_paths(text: str) -> list[str]:
    found = {m.group(0) for m in _LOCAL.finditer(text)}
    for own in {str(REPO), str(REPO.resolve()), sys.prefix, str(Path(sys.prefix).resolve())}:
        if own in text:
            found.add(own)
    return sorted(found)


def test_no_local_paths_in_the_book(built_book):
    """No page shows a path of the machine that built it: not in the injected parameters,
    the captions, the outputs, nor the API's signatures."""
    result, _, html = built_book
    assert result.returncode == 0, "the book did not build (see test_book_builds_strictly)"
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= len(toc_pages())
    problems = []
    for page in pages:
        text = page.read_text(errors="replace")
        for path in _local_paths(text):
            at = text.index(path)
            problems.append(f"{page.relative_to(html)}: {path!r} in ...{text[max(0, at - 80):at + 80]!r}...")
    assert not problems, "local paths in the built book:\n" + "\n".join(problems)


def test_no_local_paths_in_the_notebooks():
    """What the Colab buttons open (book/*.ipynb) and the sources carry no path of this
    machine, and the parameters injected by papermill are portable."""
    import nbformat

    from needle_core.book import portable

    problems = []
    for path in sorted((REPO / "book").glob("*.ipynb")) + sorted((REPO / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        problems += [f"{path.relative_to(REPO)}: {p!r}" for p in _local_paths(text)]
        injected = nbformat.reads(text, as_version=4).metadata.get("papermill", {}).get("parameters", {})
        try:
            if portable(injected) != injected:
                problems.append(f"{path.relative_to(REPO)}: injected parameters with absolute paths: {injected}")
        except ValueError as err:
            problems.append(f"{path.relative_to(REPO)}: {err}")
    assert not problems, "\n".join(problems)


def test_injected_parameters_are_portable(tmp_path):
    from needle_core.book import portable

    assert portable({"results_dir": tmp_path / "runs" / "cpu", "overrides": {"dataset": f"folder:{tmp_path}/d.tar.gz",
                                                                            "seeds": [0, 1], "lr": 0.1}}, tmp_path) \
        == {"results_dir": "runs/cpu", "overrides": {"dataset": "folder:d.tar.gz", "seeds": [0, 1], "lr": 0.1}}
    assert portable({"results_dir": "runs/cpu", "overrides": {"dataset": "cifar10"}}) \
        == {"results_dir": "runs/cpu", "overrides": {"dataset": "cifar10"}}
    with pytest.raises(ValueError, match="outside"):
        portable({"overrides": {"data_root": "/somewhere/else"}}, tmp_path)


def _github_links(text: str) -> set[str]:
    return set(re.findall(r"https://github\.com/[\w.-]+/[\w-]+(?:\.[\w-]+)*", text))


#: GitHub repositories other than ours that pages may name (the authors' code).
_OTHER_REPOSITORIES = {"https://github.com/sdascoli/anarchitectural-search"}


def test_one_repository_address():
    """needle_core.notebook.REPOSITORY is the only address of the repository: _config.yml,
    CITATION.cff, the BibTeX, pyproject and every install line agree with it."""
    import yaml

    from needle_core import book
    from needle_core.notebook import BRANCH, INSTALL, PATH_TO_BOOK, REPOSITORY

    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"] == {"url": REPOSITORY, "path_to_book": PATH_TO_BOOK, "branch": BRANCH}
    assert yaml.safe_load((REPO / "CITATION.cff").read_text())["repository-code"] == REPOSITORY
    assert book.sync_links(check=True) == [], "run `python -m needle_core.book --sync-links`"
    files = book.link_files() + [REPO / "CITATION.cff", REPO / "pyproject.toml", REPO / "book" / "references.bib"]
    for path in files:
        text = path.read_text()
        links = _github_links(text) - _OTHER_REPOSITORIES
        assert links <= {REPOSITORY}, f"{path.relative_to(REPO)} names another repository: {links - {REPOSITORY}}"
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert INSTALL.replace('"', '\\"') in path.read_text(), f"{path.name} has no install line {INSTALL}"


def test_buttons_of_the_built_book_point_at_the_repository(built_book):
    """The Colab button of every notebook page opens that page's executed copy in the
    repository; the repository button opens the repository."""
    from needle_core.notebook import REPOSITORY, colab_url

    result, _, html = built_book
    assert result.returncode == 0, "the book did not build (see test_book_builds_strictly)"
    notebooks = {p.stem for p in (REPO / "book").glob("*.ipynb")}
    for page in toc_pages():
        text = (html / f"{page}.html").read_text()
        colab = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]*)"', text))
        if page in notebooks:
            assert colab == {colab_url(f"{page}.ipynb")}, f"{page}.html: Colab links {colab}"
        else:
            assert not colab, f"{page}.html is not a notebook but has Colab links {colab}"
        assert f'href="{REPOSITORY}"' in text, f"{page}.html: no repository button to {REPOSITORY}"
        assert _github_links(text) - _OTHER_REPOSITORIES <= {REPOSITORY}


def test_citation_files():
    import yaml

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    paper = cff["preferred-citation"]
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert [a["family-names"] for a in paper["authors"]] == ["d'Ascoli", "Sagun", "Bruna", "Biroli"]
    assert (paper["year"], paper["start"], paper["end"]) == (2019, 9334, 9345)
    assert "1906.06766" in paper["url"]
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the needle authors" in licence
    import tomllib

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    bib = (REPO / "book" / "references.bib").read_text().strip()
    page = (REPO / "book" / "citing.md").read_text()
    assert f"```bibtex\n{bib}\n```" in page, "book/citing.md shows another BibTeX than book/references.bib"


#: Pages whose "paper.md §N" references their owners convert in their own change sets.
_PAPER_MD_PENDING = {"intro.md", "preregistration.md"}


def test_paper_notes_references_resolve():
    """Pages refer to the paper notes (book/paper_notes.md), never to a file the repository
    does not have."""
    pages = sorted((REPO / "book").glob("*.md")) + sorted((REPO / "notebooks").glob("*.ipynb"))
    pages = [p for p in pages if p.name not in _PAPER_MD_PENDING]
    stale = [p.relative_to(REPO).as_posix() for p in pages if "paper.md" in p.read_text()]
    assert not stale, f"pages that still cite paper.md: {stale}"


# --- Colab, simulated -------------------------------------------------------------------------

def _torch_only(folder: Path) -> Path:
    """A folder of links to torch and the distributions it needs (nothing else of this
    environment), to put on a fresh virtual environment's path: Colab's preinstalled torch,
    without downloading gigabytes of wheels."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, metadata.Distribution] = {}

    def add(name: str, extras: frozenset = frozenset()):
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        new = key not in seen
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras})
            if wanted and (new or (req.marker is not None and "extra" in str(req.marker))):
                if canonicalize_name(req.name) not in seen or req.extras:
                    add(req.name, frozenset(req.extras))

    add("torch")
    folder.mkdir()
    for dist in seen.values():
        site = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if not (folder / top).exists() and (site / top).exists():
                (folder / top).symlink_to(site / top)
    return folder


def _colab_environment(tmp: Path) -> tuple[Path, dict]:
    """A fresh virtual environment with torch only, then the package installed from a wheel
    built from its sdist, with what runs a notebook (papermill, ipykernel); returns its
    Python and the environment variables that keep it away from this checkout."""
    dist = tmp / "dist"
    from setuptools import build_meta  # noqa: F401  (the build backend of pyproject.toml)

    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    (sdist,) = dist.glob("needle_core-*.tar.gz")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(sdist)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("needle_core-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "colab_torch.pth").write_text(str(_torch_only(tmp / "torch-only")) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "MPL"))}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", JUPYTER_DATA_DIR=str(tmp / "jupyter"),
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"), HOME=str(tmp / "home"))
    (tmp / "home").mkdir()
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel),
                                "papermill", "ipykernel"], env={**env, "PIP_CACHE_DIR": os.environ.get(
                                    "PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))},
                               capture_output=True, text=True, timeout=1200)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import needle_core, torch; print(needle_core.__file__); "
                            "print(torch.__version__)"], env=env, cwd=tmp, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv)), f"needle_core is not the installed wheel: {where.stdout}"
    return python, env


def _papermill(python: Path, env: dict, notebook: Path, out: Path, cwd: Path, parameters: dict | None = None):
    import json

    cmd = [str(python), "-m", "papermill", str(notebook), str(out), "-k", "python3", "--cwd", str(cwd),
           "--no-progress-bar", "-y", json.dumps(parameters or {})]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{notebook.name} failed as on Colab:\n{result.stderr[-6000:]}"
    return time.perf_counter() - start


@pytest.mark.colab
def test_colab_simulation(tmp_path):
    """The book's notebooks as Colab runs them: a fresh environment with torch only, the
    package installed from its sdist, papermill in a folder outside the repository.

    1. ``02_training_curves`` at its defaults trains the smoke profile (synthetic data).
    2. ``03_switch_time`` as the book's Colab button opens it (``book/``, its injected
       parameters) re-plots published results from a local copy, without training: the
       repository's own store when the page reads one it ships (``runs/cpu``), else the
       store of step 1 with its checkpoints removed, as a published store is.
    """
    import json
    import shutil

    import nbformat

    python, env = _colab_environment(tmp_path)
    timings = {}
    colab = tmp_path / "colab"  # Colab's working folder
    colab.mkdir()
    timings["train smoke (02)"] = _papermill(python, env, REPO / "notebooks" / "02_training_curves.ipynb",
                                             colab / "02.ipynb", colab)
    smoke = colab / "runs" / "smoke"
    assert len(list(smoke.glob("runs/*/*/metrics.parquet"))) == 16

    page = REPO / "book" / "03_switch_time.ipynb"
    injected = nbformat.read(page, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    shipped = REPO / (injected.get("results_dir") or f"runs/{injected.get('profile', 'smoke')}")
    fresh = tmp_path / "colab-2"
    fresh.mkdir()
    if injected.get("profile", "smoke") != "smoke" and (shipped / "config.json").is_file():
        parameters, store = {}, fresh / shipped.relative_to(REPO)
        shutil.copytree(shipped, store, ignore=shutil.ignore_patterns("*.pt", "*.ckpt"))
    else:  # the book was executed on smoke (a store nobody publishes): publish step 1's store
        parameters, store = {"profile": "smoke", "results_dir": None, "overrides": {}}, fresh / "runs" / "smoke"
        shutil.copytree(smoke, store, ignore=shutil.ignore_patterns("*.pt", "*.ckpt"))
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    timings["re-plot published (03)"] = _papermill(python, env, page, fresh / "03.ipynb", fresh, parameters)
    after = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    assert after == before, "re-plotting the published results wrote to the store (it trained?)"
    executed = nbformat.read(fresh / "03.ipynb", as_version=4)
    assert sum(o.get("output_type") == "display_data" for c in executed.cells for o in c.get("outputs", [])) >= 1
    print(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    assert timings["re-plot published (03)"] < 120


def test_published_results_are_fetched_outside_a_clone(tmp_path, monkeypatch):
    """Off a clone (Colab), a published store that is missing comes from the repository's
    archive: its tables and JSON only (no checkpoints), nothing outside it."""
    import io
    import tarfile

    from needle_core import notebook

    archive = tmp_path / "needle-main.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"needle-main/runs/cpu/config.json": b"{}",
                           "needle-main/runs/cpu/runs/a/cnn/metrics.parquet": b"PAR1",
                           "needle-main/runs/cpu/runs/a/cnn/final.pt": b"weights",
                           "needle-main/runs/cpu-lr/config.json": b"{}",
                           "needle-main/README.md": b"readme"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    colab = tmp_path / "colab"
    colab.mkdir()
    monkeypatch.chdir(colab)
    assert notebook.checkout_root() is None
    assert notebook.checkout_root(REPO / "notebooks") == REPO
    monkeypatch.setattr(notebook, "archive_url", lambda: str(archive))
    root = notebook.results_root("runs/cpu")
    assert root == Path("runs/cpu")
    assert sorted(p.relative_to(colab).as_posix() for p in colab.rglob("*") if p.is_file()) == \
        ["runs/cpu/config.json", "runs/cpu/runs/a/cnn/metrics.parquet"]
    assert notebook.results_root("runs/smoke") == Path("runs/smoke") and not (colab / "runs" / "smoke").exists()
    assert notebook.colab_url("02_training_curves.ipynb") == (
        "https://colab.research.google.com/github/" + notebook.REPOSITORY.removeprefix("https://github.com/")
        + "/blob/main/book/02_training_curves.ipynb")


def test_published_stores_are_the_ones_git_keeps():
    """notebook.PUBLISHED names the stores .gitignore lets through (``!runs/<name>/``)."""
    from needle_core.notebook import PUBLISHED

    kept = re.findall(r"^!(runs/[\w.-]+)/$", (REPO / ".gitignore").read_text(), flags=re.M)
    assert sorted(kept) == sorted(PUBLISHED)


_FIGURES = """() => [...document.querySelectorAll('.cell_output img, figure img')].map(img => {
    const box = img.getBoundingClientRect();
    return {src: img.currentSrc || img.src, width: box.width, height: box.height,
            natural: [img.naturalWidth, img.naturalHeight], declared: Number(img.getAttribute('width')) || parseFloat(img.style.width) || 0};
})"""


#: Pages whose notebooks do not start with needle_core.notebook.start() yet (their owners'
#: change sets): the phone check applies to them, the HiDPI one not.
_NOT_YET_RETINA: set = set()


def test_figures_on_a_phone_and_a_hidpi_screen(served_book):
    """On a 390-px phone every figure fits the screen with its aspect ratio kept; figures
    carry at least twice the pixels they are shown with (sharp on HiDPI screens)."""
    if not CHROMIUM.exists():
        _skip_or_fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    problems, seen = [], 0
    notebooks = {p.stem for p in (REPO / "book").glob("*.ipynb")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=3)
            for name in (p for p in toc_pages() if p in notebooks):
                page.goto(f"{served_book}/{name}.html", wait_until="load")
                page.evaluate(_IMAGES)  # load every image
                for fig in page.evaluate(_FIGURES):
                    if not fig["natural"][0] or not fig["width"]:
                        continue
                    seen += 1
                    ratio = (fig["height"] / fig["width"]) / (fig["natural"][1] / fig["natural"][0])
                    if fig["width"] > 390 or abs(ratio - 1) > 0.03:
                        problems.append(f"{name}.html: {fig['src'][-20:]} shown {fig['width']:.0f}x{fig['height']:.0f} "
                                        f"from {fig['natural']} (aspect off by {ratio - 1:+.0%} or wider than the phone)")
                    elif name not in _NOT_YET_RETINA and \
                            (not fig["declared"] or fig["natural"][0] < 1.9 * fig["declared"]):
                        problems.append(f"{name}.html: {fig['src'][-20:]} has {fig['natural'][0]} px for "
                                        f"{fig['declared']} CSS px (or no display size): not sharp on a HiDPI screen")
        finally:
            browser.close()
    assert seen, "no figure found"
    assert not problems, "\n".join(problems)


# --- A reader on a phone: tables that render, text that can be read, nothing wider than the screen

PHONE = {"width": 390, "height": 844}

#: A Markdown table shown as text: its separator row ``|---|---|`` outside any code block (the
#: HTML writer's smart quotes turn ``---`` into an em dash, and a paragraph joins the lines).
_PIPE_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[—–]-*):?\s*\|\s*:?(?:-{3,}|[—–]-*):?\s*\|")

_ARTICLE_TEXT = """() => {
    const article = (document.querySelector('.bd-article') || document.body).cloneNode(true);
    article.querySelectorAll('pre, code, script, style, .highlight').forEach(e => e.remove());
    return article.innerText;
}"""

_WIDEST = """() => {
    const width = document.documentElement.clientWidth;
    const scrolls = e => { for (let x = e.parentElement; x; x = x.parentElement) {
        if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(x).overflowX)) return true; } return false; };
    const wide = [...document.querySelectorAll('body *')].filter(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.right > width + 1 && getComputedStyle(e).position !== 'fixed' && !scrolls(e);
    }).map(e => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : ''));
    return {scroll: document.documentElement.scrollWidth, client: width, wide: wide.slice(0, 3)};
}"""


def _png_text(html_dir: Path, src: str) -> dict:
    """The PNG text chunks of the built image at ``src`` (an URL of the served book)."""
    from PIL import Image

    path = html_dir / urlparse(src).path.lstrip("/")
    with Image.open(path) as image:
        return dict(getattr(image, "text", {}) or {})


def phone_problems(base_url: str, html_dir: Path, pages: list[str], min_text_px: float = 9.0) -> tuple[list, int]:
    """What a reader on a 390-px phone would stumble on, page by page: a Markdown table shown as
    pipe text, a page wider than the screen, a figure whose smallest text (its tick labels
    included: the PNG records it, ``needle_core.plots.png``) is shown under ``min_text_px`` CSS
    px.  Returns the problems and the number of figures checked."""
    from playwright.sync_api import sync_playwright

    problems, figures = [], 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport=PHONE, device_scale_factor=3)
            for name in pages:
                page.goto(f"{base_url}/{name}.html", wait_until="load")
                page.evaluate(_IMAGES)
                page.wait_for_timeout(300)  # MathJax typesets after load
                text = page.evaluate(_ARTICLE_TEXT)
                for match in _PIPE_TABLE.finditer(text):
                    problems.append(f"{name}.html: a Markdown table shown as text: {match.group(0).strip()[:40]!r}")
                    break
                size = page.evaluate(_WIDEST)
                if size["scroll"] > PHONE["width"] + 1:
                    problems.append(f"{name}.html: {size['scroll']} px wide on a {PHONE['width']}-px phone "
                                    f"(too wide: {', '.join(size['wide'])})")
                for fig in page.evaluate(_FIGURES):
                    if not fig["natural"][0] or not fig["width"]:
                        continue
                    figures += 1
                    recorded = _png_text(html_dir, fig["src"]).get("needle:min-text-css-px")
                    natural = fig["declared"] or fig["natural"][0] / 2
                    if recorded is None:  # at best the book's 9-pt tick labels at 110 dpi (13.75 px)
                        problems.append(f"{name}.html: {fig['src'][-24:]} does not record its smallest text (draw it "
                                        f"with needle_core.plots.show); 9-pt ticks at 110 dpi would be shown "
                                        f"{13.75 * fig['width'] / natural:.1f} px (shown {fig['width']:.0f} of "
                                        f"{natural:.0f} px)")
                        continue
                    shown = float(recorded) * fig["width"] / natural
                    if shown < min_text_px:
                        problems.append(f"{name}.html: {fig['src'][-24:]}: smallest text {shown:.1f} px on a phone "
                                        f"(< {min_text_px}; shown {fig['width']:.0f} of {natural:.0f} px)")
        finally:
            browser.close()
    return problems, figures


def test_pages_on_a_phone(served_book, built_book):
    """On a 390-px phone: no page is wider than the screen, no table is pipe text, and every
    figure's smallest text (tick labels) is at least 9 CSS px."""
    if not CHROMIUM.exists():
        _skip_or_fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    problems, figures = phone_problems(served_book, built_book[2], toc_pages())
    assert figures, "no figure found"
    assert not problems, "\n".join(problems)


def test_no_figure_shows_text_too_small_for_a_phone():
    """plots.show refuses a figure whose smallest text would be under 9 px on a phone, and
    records the size of that text in the PNG it shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from needle_core import plots

    plots.use_style()
    fig, ax = plt.subplots(figsize=(plots.WIDTH, 3))
    ax.plot([0, 1], [0, 1])
    assert plots.phone_text_px(fig) >= plots.MIN_TEXT_PX
    wide, ax = plt.subplots(figsize=(7.0, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_title("small", fontsize=7)
    assert plots.phone_text_px(wide) < plots.MIN_TEXT_PX
    with pytest.raises(ValueError, match="390-px phone"):
        plots.show(wide)
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(plots.png(fig))) as image:
        assert float(image.text["needle:min-text-css-px"]) == pytest.approx(9 / 72 * plots.DPI, abs=0.01)
    plt.close("all")


def test_rendering_twice_gives_the_same_bytes():
    """What a page shows does not change when it is rendered again on unchanged data: a figure's
    PNG carries no date or version, a table's HTML ids derive from its key (not a random uuid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from needle_core import plots, report

    def draw():
        fig, ax = plt.subplots(figsize=(plots.WIDTH, 2))
        ax.plot([0, 1, 2], [0.1, 0.5, 0.3])
        return plots.png(fig)

    plots.use_style()
    first, second = draw(), draw()
    assert first == second and b"Software" not in first
    frame = pd.DataFrame({"t_w": [0.0, 2.0], "difference": [0.01234, -0.5]})
    assert report.table_html(frame, "tab-x") == report.table_html(frame, "tab-x")
    assert 'id="T_tab-x' in report.table_html(frame, "tab-x")
    plt.close("all")


def test_a_page_refuses_seeds_it_cannot_show(tmp_path):
    """report.load shows exactly the config's seeds: a subset of a store's seeds is read as that
    subset (never labelled 3 seeds while averaging 5), and a seed the store lacks is refused
    when nothing may be trained."""
    from needle_core import report

    class Config:
        seeds = [0, 1, 2]

    report.refuse_seeds(None, Config)
    report.refuse_seeds([2, 1, 0], Config)
    with pytest.raises(ValueError, match="cannot show a subset"):
        report.refuse_seeds([0, 1], Config)
    # the published store has seeds 0-4: asked for three, the page reads three; asked for a seed
    # it does not have, with nothing to train, it refuses
    overrides = {"dataset": "folder:data/cifar10-jpeg.tar.gz"}
    page = report.load("cpu", REPO / "runs" / "cpu", overrides | {"seeds": [0, 1, 2]}, train=False)
    assert set(page.frame.seed) == set(page.runs.seed) == {0, 1, 2}
    assert "3 seeds (0, 1, 2)" in page.describe()["data"]
    with pytest.raises(ValueError, match=r"seeds \[9\] have no runs"):
        report.load("cpu", REPO / "runs" / "cpu", overrides | {"seeds": [0, 9]}, train=False)
    # a campaign still training is read as it stands, and says how much has landed
    page = report.load("cpu", REPO / "runs" / "cpu", overrides | {"seeds": [0, 9]}, train=False, in_progress=True)
    assert set(page.frame.seed) == set(page.runs.seed) == {0} and page.config.seeds == [0]
    assert page.pending == "campaign in progress: 8 of 16 runs landed; complete seeds: 0 (of 0, 9)"
    assert page.curves_pending is None  # the cpu profile plans no trained curves
    assert report.provenance_rows(page)["campaign"] == page.pending
    assert report.load("cpu", REPO / "runs" / "cpu", overrides, train=False, in_progress=True).pending is None
    # claim 6 planned but not yet measured reads as planned, not as "no measurements"
    from types import SimpleNamespace

    def results(times, pending):
        return SimpleNamespace(config=SimpleNamespace(landscape_switch_times=times), configurations=lambda: [{}],
                               frame=None, curves_pending=pending)

    waiting = results([9, 49, 151], "trained curves in progress: 0 of 24 measured")
    assert report.measured(6, object(), waiting) == ("Trained curves eFCN → FCN, with their controls, pre-registered "
                                                     "at t_w = 9, 49, 151: trained curves in progress: 0 of 24 measured.")
    assert report.measured(6, object(), results([], None)) == "No landscape measurements in this store."


def test_claim_6_waits_for_the_curves_its_rule_reads_and_not_for_those_that_describe():
    """Progress of a campaign with 24 curve tasks, 12 of them read by claim 6's rule: pending
    while one of those (or a run) is missing; once they are all measured the verdict is given,
    and the describing curves still to come are listed beside it."""
    from needle_core.report import Progress

    runs = dict(planned=18, finished=18, seeds=(0, 1, 2), landed=(0, 1, 2), complete=(0, 1, 2))
    some = Progress(**runs, curves_planned=24, curves_finished=11, deciding_planned=12, deciding_finished=11)
    assert some.curves_pending == ("trained curves in progress: 11 of 24 measured (11 of the 12 that claim 6's rule "
                                   "reads)") and some.curves_describing is None
    read = Progress(**runs, curves_planned=24, curves_finished=12, deciding_planned=12, deciding_finished=12)
    assert read.curves_pending is None
    assert read.curves_describing.startswith("trained curves that describe (eFCN ↔ eFCN, CNN ↔ CNN) in progress: "
                                             "12 of 24 measured")
    assert Progress(**runs, curves_planned=24, curves_finished=24, deciding_planned=12,
                    deciding_finished=12).curves_describing is None
    training = Progress(**dict(runs, finished=17), curves_planned=24, curves_finished=12, deciding_planned=12,
                        deciding_finished=12)
    assert training.curves_pending and training.curves_describing is None  # a run may still change an endpoint
    # ... unless no missing run is a curve's endpoint (seeds added beyond landscape_seeds)
    grown = dict(runs, planned=30, finished=22, seeds=(0, 1, 2, 3, 4))
    beyond = Progress(**grown, curves_planned=24, curves_finished=12, deciding_planned=12, deciding_finished=12,
                      endpoints_missing=0)
    assert beyond.pending and beyond.curves_pending is None and beyond.curves_describing
    assert Progress(**grown, curves_planned=24, curves_finished=12, deciding_planned=12, deciding_finished=12,
                    endpoints_missing=1).curves_pending


def test_the_converged_graph_has_12_curves_that_decide_claim_6_of_24(tmp_path):
    """What progress() counts for the converged profile, on an empty store: 18 runs of the registered
    seeds (30 with the amendment's), and 24 curve tasks either way (the curves stay on seeds 0-2), of
    which 12 (eFCN -> FCN at 3 t_w x 3 seeds, FCN <-> FCN x 3) are read by the rule."""
    from needle_core.config import make_config
    from needle_core.report import progress

    p = progress(make_config("converged", {"dataset": "synthetic", "seeds": [0, 1, 2]}), tmp_path)
    assert (p.planned, p.finished, p.curves_planned, p.deciding_planned, p.deciding_finished) == (18, 0, 24, 12, 0)
    p = progress(make_config("converged", {"dataset": "synthetic"}), tmp_path)
    assert (p.planned, p.curves_planned, p.deciding_planned) == (30, 24, 12)
    assert p.endpoints_missing == 15  # seeds 0-2: trunk, FCN and the eFCN at the 3 curve t_w; never seeds 3-4


def test_tables_are_numbered_by_the_chapter_of_their_page():
    """Sphinx cannot number raw HTML tables: book.execute prefixes each caption with the
    chapter's number (from _toc.yml, as the figures are numbered) and the table's rank in the
    chapter, counting on from the chapter's earlier pages (page 3b continues page 3)."""
    import re

    import nbformat

    from needle_core import book

    chapters = book.chapters()
    assert chapters["01_embedding"] == ("1", []) and chapters["03_switch_time_converged"] == ("3", [])
    assert chapters["03_switch_time"] == ("3", ["03_switch_time_converged", "03_switch_time_converged_low_lr"])
    assert chapters["03_switch_time_lr"][1][-1] == "03_switch_time" and "scorecard" not in chapters
    nb = nbformat.v4.new_notebook()
    html = '<table><caption>{}</caption></table>'
    nb.cells = [nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": html.format(c) + "<table></table>"}) for c in ("first", "second")])]
    assert book.number_tables(nb, "3", first=4) == 2
    shown = [o["data"]["text/html"] for o in nb.cells[0].outputs]
    assert shown == [html.format("Table 3.4: first") + "<table></table>", html.format("Table 3.5: second") + "<table></table>"]
    assert book.number_tables(nb, None) == 0
    # in the book, each chapter's captioned tables are numbered 1, 2, ... across its pages
    seen = {}
    for page, (chapter, _) in chapters.items():
        path = book.BOOK / f"{page}.ipynb"
        for caption in book._CAPTION.findall("".join(str(d["text/html"]) for d in book._html_outputs(
                nbformat.read(path, as_version=4))) if path.exists() else ""):
            seen[chapter] = seen.get(chapter, 0) + 1
            assert re.match(rf"Table {chapter}\.{seen[chapter]}: ", caption), (page, caption)


def test_a_pages_own_overrides_join_the_offered_ones(tmp_path, monkeypatch):
    """An edition page's own ``overrides`` (its registered seeds) are merged into the offered
    ones (the data set), not put in their place."""
    import nbformat

    from needle_core import book

    sources, out = tmp_path / "notebooks", tmp_path / "book"
    sources.mkdir()
    _notebook(sources / "03_s.ipynb", 'profile = "smoke"\noverrides = {}', "print(sorted(overrides.items()))")
    monkeypatch.setattr(book, "EDITION", {"cpu": {"03_s": {"overrides": {"seeds": [0, 1, 2]}}}})
    [path] = book.execute_all("cpu", sources, out, cwd=tmp_path, overrides={"dataset": "folder:d.tar.gz", "seeds": [0]})
    assert nbformat.read(path, as_version=4).cells[-1].outputs[0].text == \
        "[('dataset', 'folder:d.tar.gz'), ('seeds', [0, 1, 2])]\n"


def test_the_converged_pages_read_the_registered_seeds_and_show_the_amendment_beside_them():
    """Arm 1's store has the amendment's seeds; every page of arm 1 reads the registered ones,
    the scorecard and Findings add the amendment's reading, and claim 6's curves stay on the
    registered seeds (book/preregistration.md, the amendment)."""
    from needle_core import book
    from needle_core.config import PROFILES

    pages = book.EDITION["converged"]
    arm1 = {name: spec for name, spec in pages.items() if spec.get("profile", "converged") == "converged"}
    assert all(spec.get("overrides") == book.ARM1_REGISTERED for spec in arm1.values())
    assert {name for name, spec in arm1.items() if "amendment" in spec} == {"scorecard_converged", "findings_converged"}
    registered, amended = book.ARM1_REGISTERED["seeds"], book.ARM1_AMENDMENT["seeds"]
    assert set(registered) < set(amended) and PROFILES["converged"]["seeds"] == amended
    assert PROFILES["converged"]["landscape_seeds"] == registered
