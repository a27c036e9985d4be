"""Sphinx fixes for the needle book, loaded by ../../_config.yml (``sphinx.local_extensions``).

The pinned stack (jupyter-book 1.0.4, Sphinx 7.4, sphinx-thebe 0.3.1) writes sphinx-thebe's
inline configuration script twice on every page: once registered with ``filename=None`` and
once with ``filename=''``, which Sphinx does not recognise as the same script.  The second
``const THEBE_JS_URL = ...`` is a JavaScript error in every browser console.  MathJax, served
from ``_static`` so that the book works offline, is likewise added twice (with and without
``defer``).  This keeps the first of the scripts that load the same file, and of the inline
scripts that are exact duplicates, on each page.
"""


def _key(script):
    filename = getattr(script, "filename", script) or ""
    if filename:  # one file loaded twice is always a bug (MathJax, served locally, is added twice)
        return filename
    attributes = getattr(script, "attributes", {}) or {}
    return ("", getattr(script, "priority", None), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # Sphinx restores the full list after each page


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
