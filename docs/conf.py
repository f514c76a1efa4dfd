"""Sphinx configuration for the parsl-quantum documentation."""

project = "parsl-quantum"
author = "parsl-quantum developers"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
nitpicky = False
suppress_warnings = ["myst.xref_missing", "myst.header", "autodoc.import_object"]
html_theme = "alabaster"
# Docstrings follow one convention, NumPy style; a class's ``Attributes`` section renders as a
# field list, so a dataclass field is not described twice (there and as an autodoc member).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
