"""The companion as a site (book/conf.py): it builds offline from the checkout with the
README's command, every gallery figure and claims table is on its notebook's page, the
figures come in the paper's order and every internal link resolves."""

import base64
import hashlib
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
GALLERY = sorted((ROOT / "gallery").glob("*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as the README says (into a temporary folder, not build/site);
    -W: a warning, such as a link MyST cannot resolve, fails the build."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-c", "book", "-W", "-q",
                    "-d", str(out / ".doctrees"), ".", str(out)], cwd=ROOT, check=True,
                   timeout=300)
    return out


class Page(HTMLParser):
    """The ids, links (href and src) and images of one HTML page."""

    def __init__(self, path: Path):
        super().__init__()
        self.ids, self.links, self.images = set(), [], []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def outputs(notebook: Path):
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        yield from (o.get("data", {}) for o in cell.get("outputs", []))


def test_the_site_opens_at_index_html_on_the_readme(site):
    assert "url=README.html" in (site / "index.html").read_text()
    assert "Read it as a book" in (site / "README.html").read_text()


@pytest.mark.parametrize("notebook", GALLERY, ids=lambda p: p.stem)
def test_every_gallery_figure_and_claims_table_is_on_its_page(site, notebook):
    page_path = site / "gallery" / f"{notebook.stem}.html"
    page, html = Page(page_path), page_path.read_text(encoding="utf-8")
    shown = {Path(src).stem for src in page.images}
    figures = [hashlib.sha256(base64.b64decode(d["image/png"])).hexdigest()
               for d in outputs(notebook) if "image/png" in d]
    assert figures, "a gallery notebook shows its figure"
    assert set(figures) <= shown, "MyST-NB names each image by the sha256 of its bytes"
    claims = sum("".join(d["text/html"]).count("<th>holds</th>")
                 for d in outputs(notebook) if "text/html" in d)
    assert claims >= 1 and html.count("<th>holds</th>") == claims
    assert "_static/mathjax/MathJax.js" in html, "MathJax from the site itself, offline"
    assert f"gallery/{notebook.name}" in html, "a link to the notebook's source"


def test_files_of_the_checkout_are_served_not_sent_to_a_code_host(site):
    """The project has no public address: a link to a source notebook is a download from
    the site, a link to a folder is its name, and no button points anywhere else."""
    page = Page(site / "README.html")
    downloads = [link for link in page.links if "/_downloads/" in "/" + link]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        served = [d for d in downloads if d.endswith("/" + notebook.name)]
        assert served, f"README's link to notebooks/{notebook.name}"
        assert (site / unquote(served[0])).read_bytes() == notebook.read_bytes()
    pages = [path for path in site.rglob("*.html") if "_static" not in path.parts]
    hosts = {urlsplit(link).netloc for path in pages for link in Page(path).links
             if urlsplit(link).scheme in ("http", "https")}
    # the paper, the authors' code, Dask's docs: nothing of this project's own
    assert hosts == {"arxiv.org", "proceedings.neurips.cc", "github.com", "distributed.dask.org"}
    assert not [link for path in pages for link in Page(path).links
                if urlsplit(link).netloc == "github.com" and "/ChristophorusX/" not in link]
    assert "fa/figures/" in (site / "README.html").read_text(encoding="utf-8")


def test_the_figures_come_in_the_papers_order():
    toc = (ROOT / "book" / "_toc.yml").read_text()
    listed = [line.split("file: gallery/")[1].strip() for line in toc.splitlines()
              if "file: gallery/" in line]
    assert listed == [p.stem for p in GALLERY]
    assert "file: docs/reproduction" in toc


def test_every_internal_link_resolves(site):
    pages = {path: Page(path) for path in site.rglob("*.html")
             if "_static" not in path.relative_to(site).parts}   # theme templates, not pages
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue                  # the web: the authors' code, arXiv, Binder
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else Page(target).ids
                if parts.fragment not in ids:
                    broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "\n".join(broken)
