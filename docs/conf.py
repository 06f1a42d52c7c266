"""Sphinx configuration for sc-cello1."""

from __future__ import annotations

import sys
from datetime import date
from importlib.metadata import version as _version
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "src"))

project = "sc-cello1"
author = "sc-cello1 developers"
copyright = f"{date.today().year}, {author}"
release = _version("sc-cello1")
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "generated/*.rst.tmp"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"

autosummary_generate = True
autodoc_member_order = "bysource"
# Overrides of third-party methods (e.g. LightningModule.training_step) would inherit
# docstrings written for another doc toolchain.
autodoc_inherit_docstrings = False
# undoc-members: dataclass fields and overridden hooks have no docstring of their own,
# yet the class pages list them (and nitpicky needs each listed name to exist).
autodoc_default_options = {"members": True, "undoc-members": True, "inherited-members": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
# "Attributes" sections as :ivar: fields: autodoc documents the attributes themselves
# (undoc-members), and two descriptions of one attribute would be a duplicate.
napoleon_use_ivar = True
napoleon_use_param = True
typehints_defaults = "braces"
always_document_param_types = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # tutorials are stored with their outputs
nitpicky = True
# Offline builds (CELLO1_DOCS_OFFLINE=1, the default: CI has no internet) have no
# intersphinx inventories, so references to other projects cannot resolve there; every
# reference into sc_cello1 is still checked. With inventories (CELLO1_DOCS_OFFLINE=0)
# these resolve and nothing is ignored.
_EXTERNAL = (
    "typing", "collections", "os", "pathlib", "random", "re", "argparse", "contextlib",
    "torch", "numpy", "np", "pandas", "pd", "scipy", "anndata", "scanpy", "matplotlib",
    "lightning", "transformers", "peft", "trl", "datasets", "vllm", "openai", "pooch",
    "huggingface_hub",
)  # fmt: skip
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?"),
    (r"py:.*", r"Ellipsis|None|NoneType"),
]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "pandas": ("https://pandas.pydata.org/pandas-docs/stable/", None),
}
# Offline builds (CI has no internet): do not try to fetch inventories.
intersphinx_disabled_reftypes = ["*"]
intersphinx_timeout = 1
if __import__("os").environ.get("CELLO1_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

html_theme = "sphinx_book_theme"
html_title = "sc-cello1"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": "https://github.com/scverse/sc-cello1",
    "use_repository_button": True,
}


# --- API pages: one per public namespace, listing its ``__all__`` -----------------
_NAMESPACES = {
    "pp": "Preprocessing",
    "tl": "Tools",
    "pl": "Plotting",
    "get": "Getters",
    "data": "CellPuzzles data",
    "metrics": "Metrics",
    "models": "Pretrained models",
    "inference": "Inference backends",
    "train": "Training",
}


def _write_api_pages() -> None:
    import importlib

    api = HERE / "api"
    api.mkdir(exist_ok=True)
    for ns, title in _NAMESPACES.items():
        module = importlib.import_module(f"sc_cello1.{ns}")
        names = sorted(getattr(module, "__all__", []), key=str.lower)
        doc = (module.__doc__ or "").strip().splitlines()
        lines = [f"# {title}: `cello1.{ns}`", "", doc[0] if doc else "", ""]
        lines += [
            "```{eval-rst}",
            f".. module:: sc_cello1.{ns}",
            f".. currentmodule:: sc_cello1.{ns}",
            "",
        ]
        if names:
            lines += [".. autosummary::", "   :toctree: ../generated/", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in names]
        lines += ["```", ""]
        text = "\n".join(lines)
        path = api / f"{ns}.md"
        # Hand-written sections after the generated list (e.g. "GRPO at scale") are kept.
        if path.exists() and "\n```\n" in path.read_text():
            tail = path.read_text().split("\n```\n", 1)[1].lstrip("\n")
            text += ("\n" + tail) if tail else ""
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    index = [
        "# API",
        "",
        "```python",
        "import sc_cello1 as cello1",
        "```",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
    ]
    index += list(_NAMESPACES) + ["settings", "```", ""]
    text = "\n".join(index)
    if not (api / "index.md").exists() or (api / "index.md").read_text() != text:
        (api / "index.md").write_text(text)


_write_api_pages()


def _copy_tutorials() -> None:
    import shutil

    target = HERE / "tutorials"
    target.mkdir(exist_ok=True)
    for nb in sorted((HERE.parent / "tutorials").glob("*.ipynb")):
        dest = target / nb.name
        if not dest.exists() or dest.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, dest)


_copy_tutorials()


# --- docstrings must be valid reStructuredText ---------------------------------------
# sphinx-autodoc-typehints re-parses each docstring (after napoleon) with its own
# docutils parser, whose messages went straight to stderr and never through Sphinx's
# logger, so ``sphinx-build -W`` passed with dozens of them in the log. Route every
# message of that parse to Sphinx as a warning at the object, so ``-W`` fails on it.
_docstring_of: dict[str, str | None] = {"name": None}


def _remember_object(app, what, name, obj, options, lines) -> None:
    _docstring_of["name"] = name


def _report_snippet_messages(parse):
    from sphinx.util import logging as sphinx_logging

    log = sphinx_logging.getLogger("sc_cello1.docs")

    def checked_parse(inputstr, settings):
        doc = parse(inputstr, settings)
        for node in doc.findall(lambda n: n.tagname == "system_message"):
            if node["level"] >= 2:  # docutils WARNING, ERROR, SEVERE
                text = node.astext().strip().splitlines()
                log.warning(
                    "docstring of %s, line %s: %s",
                    _docstring_of["name"],
                    node.get("line"),
                    text[-1] if text else node.tagname,
                    type="cello1",
                    subtype="docstring",
                )
        return doc

    return checked_parse


def _is_section_header(lines: list[str], i: int) -> bool:
    """Whether ``lines[i]`` is a numpydoc section title (underlined by dashes)."""
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and not lines[i].startswith(" ")
        and len(lines[i + 1].strip()) >= 3
        and set(lines[i + 1].strip()) == {"-"}
    )


def _prose_returns(app, what, name, obj, options, lines) -> None:
    """Render a numpydoc ``Returns`` section written as prose as one ``:returns:`` field.

    The house style keeps types in the signature and describes the result in prose.
    napoleon reads each line of such a section as a ``type`` entry, which renders as a
    bullet per line ("Return type: two lists of puzzles", "( from ) var[...]"). A
    section whose first line is ``name : type`` is left to napoleon.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not (lines[i].strip() == "Returns" and _is_section_header(lines, i)):
            out.append(lines[i])
            i += 1
            continue
        j = i + 2
        while j < len(lines) and not _is_section_header(lines, j):
            j += 1
        body = lines[i + 2 : j]
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if not body or " : " in body[0]:
            out.extend(lines[i:j])
        else:
            # Two blank lines end napoleon's preceding section, so the field passes through.
            out += ["", "", f":returns: {body[0].strip()}"]
            out += [f"    {line}" if line.strip() else "" for line in body[1:]]
            out.append("")
        i = j
    lines[:] = out


def setup(app):
    import sphinx_autodoc_typehints as typehints

    # Before napoleon (priority 500).
    app.connect("autodoc-process-docstring", _prose_returns, priority=400)

    if not callable(getattr(typehints, "parse", None)):
        msg = "sphinx_autodoc_typehints.parse is gone; update the docstring check in docs/conf.py"
        raise RuntimeError(msg)
    typehints.parse = _report_snippet_messages(typehints.parse)
    # Before napoleon and typehints (priority 500): the name of the object being parsed.
    app.connect("autodoc-process-docstring", _remember_object, priority=100)
