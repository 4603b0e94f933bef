"""Sphinx configuration of the gmmspeech documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (with ``.[docs]``
installed). The config and CLI references and the API page are generated from the code by
``_ext/gmmspeech_docs.py``; the gallery is ``examples/plot_*.py``, run by sphinx-gallery.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import gmmspeech_docs  # noqa: E402

import gmmspeech  # noqa: E402

# The examples are small; one BLAS thread keeps the build's timing steady on shared cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

project = "gmmspeech"
author = "the gmmspeech developers"
copyright = "the gmmspeech developers, MIT licence"
release = gmmspeech.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "gmmspeech_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "examples/**"]
templates_path = ["_templates"]

# The API page lists gmmspeech.__all__; written before Sphinx reads the sources, so that
# autosummary generates a page for every name.
gmmspeech_docs.write_api_page(HERE / "api" / "index.rst")
gmmspeech_docs.write_recipe_pages(HERE.parent / "recipes", HERE / "recipes")

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gmmspeech_docs.GalleryOrder",
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"gmmspeech {release}"
html_static_path = ["_static"]
html_css_files = ["gmmspeech.css"]
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
