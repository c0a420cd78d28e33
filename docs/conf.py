"""Sphinx configuration of the docs site (``make docs``).

The pages are Markdown, read by MyST; the theme is Furo. ``make docs`` builds with
``-W --keep-going -n``: every warning (a broken link, a page left out of the toctree,
an anchor that does not exist) fails the build. ``incoming/`` holds notes that other
branches leave for the pages; they are folded in by hand and never built.
"""

project = "dp-runner"
author = "the dp-runner authors"
copyright = "the dp-runner authors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "incoming", "incoming/**"]

# `[text](page.md#a-heading)` links resolve to headings down to ###, GitHub's way.
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

html_theme = "furo"
html_title = "dp-runner"
