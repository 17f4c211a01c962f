"""Sphinx settings of the companion's site: the README, docs/ and the executed gallery
notebooks as one book (Jupyter Book 1's parts: MyST-NB, the book theme, an external table
of contents). Build it from the repository root, offline, without running a notebook:

    python -m sphinx -b html -c book . build/site
"""

import posixpath
import shutil
from pathlib import Path

import jupyter_server_mathjax
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform

project = "fa: feedback alignment, reproduced"
author = "the fa contributors"
extensions = ["myst_nb", "sphinx_external_toc", "sphinx_design"]
external_toc_path = "book/_toc.yml"
#: Only the book's pages are read: the source folder is the whole checkout.
include_patterns = ["README.md", "docs/*.md", "gallery/*.ipynb"]
# A gallery notebook still being executed is written as <name>.partial.ipynb.
exclude_patterns = ["gallery/*.partial.ipynb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3          # the README's and docs' "#section" links resolve
nb_execution_mode = "off"         # the gallery notebooks are shown as executed, never rerun
nb_merge_streams = True
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "fa: feedback alignment, reproduced"
# No repository, source or Binder buttons: the project has no public address yet, and a
# button to a made-up one only leads to a 404. The download button serves each page's own
# source (the .ipynb of a gallery page) from the site, offline too.
html_theme_options = {"use_download_button": True, "show_navbar_depth": 1}
html_static_path = ["_static"]
html_css_files = ["book.css"]
#: MathJax 2 as a PyPI package ships it, copied into the site: the math is typeset offline
#: too (Sphinx's default loads MathJax 3 from a CDN).
MATHJAX = Path(jupyter_server_mathjax.__file__).parent / "static"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
#: MyST marks each page's text as not math and its math spans as math (MathJax 3's
#: options); MathJax 2 says the same with these classes. The package ships the STIX-Web
#: fonts only: without naming them MathJax measures with the TeX fonts it lacks. An
#: equation wider than the page is broken into lines, as MathJax 3's theme would scroll it.
mathjax2_config = {
    "tex2jax": {"ignoreClass": "tex2jax_ignore|mathjax_ignore",
                "processClass": "tex2jax_process|mathjax_process|math|output_area"},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web",
                 "imageFont": None, "linebreaks": {"automatic": True}},
}


def _mathjax(app, exception):
    """Copy MathJax where :data:`mathjax_path` points. (``index.html``, a redirect to the
    first page, the README, comes from sphinx-external-toc.)"""
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX, Path(app.outdir, "_static", "mathjax"), dirs_exist_ok=True)


class CheckoutLinks(SphinxTransform):
    """Links to files of the checkout that are not pages of the book (the source notebooks,
    benchmarks/README.md) become downloads, copied into the site like the ``.py`` files
    MyST already serves so; a link to a folder (``fa/figures/``) keeps only its text, which
    names the folder of the checkout. Without this MyST would drop them with a warning."""

    default_priority = 500      # at reading: the download collector then copies the files

    def apply(self, **kwargs):
        root = Path(self.env.srcdir)
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node["reftype"] != "myst" or node["reftarget"] in self.env.found_docs:
                continue
            if node["refdomain"] == "doc":     # a docname, from the root, without suffix
                path = next((node["reftarget"] + s for s in (".ipynb", ".md")
                             if (root / (node["reftarget"] + s)).is_file()), None)
            else:                              # a path as written, from the page's folder
                path = posixpath.normpath(posixpath.join(
                    posixpath.dirname(node.get("refdoc", self.env.docname)), node["reftarget"]))
                path = path if (root / path).exists() else None
            if path is None:
                continue                       # not a file of the checkout: MyST warns
            text = node[0].deepcopy().children or [nodes.literal(path, path)]
            if (root / path).is_dir():
                node.replace_self(nodes.inline("", "", *text))
                continue
            link = addnodes.download_reference("", "", refdoc=node["refdoc"],
                                               reftarget="/" + path, refexplicit=True)
            link.extend(text)
            node.replace_self(link)


def setup(app):
    app.add_transform(CheckoutLinks)
    app.connect("build-finished", _mathjax)
