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
autodoc_default_options = {"members": True, "inherited-members": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
napoleon_use_param = True
typehints_defaults = "braces"
always_document_param_types = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # tutorials are stored with their outputs
nitpicky = False

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
html_theme_options = {"repository_url": "https://github.com/scverse/sc-cello1", "use_repository_button": True}


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
        lines += ["```{eval-rst}", f".. module:: sc_cello1.{ns}", f".. currentmodule:: sc_cello1.{ns}", ""]
        if names:
            lines += [".. autosummary::", "   :toctree: ../generated/", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in names]
        lines += ["```", ""]
        text = "\n".join(lines)
        path = api / f"{ns}.md"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    index = ["# API", "", "```python", "import sc_cello1 as cello1", "```", "", "```{toctree}", ":maxdepth: 1", ""]
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

# GRPOModule is built by a factory on first access (so `import sc_cello1` does not
# import Lightning); its methods are local functions that the typehints extension
# cannot resolve, which is harmless.
suppress_warnings = ["sphinx_autodoc_typehints.local_function"]
