"""The documentation: every markdown link in README.md and docs/**/*.md resolves (relative paths to an
existing file or folder, `#anchors` to a heading of the target file, as GitHub slugs them; http(s) links
well-formed), and the README stays a short front page that says how to run its commands."""
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text):
    """The markdown without fenced code blocks and inline code spans (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation and symbols dropped (letters, marks, decimal
    digits, '_', '-' and spaces kept), spaces to '-'. Inline code keeps its text, markup its content."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LM"
                   or unicodedata.category(c) == "Nd")
    return kept.replace(" ", "-")


def anchors(page):
    """Every heading anchor of a markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M),
                              re.M):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def links(page):
    return LINK.findall(prose(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert links(page) or page.name != "README.md", "the README links nowhere"
    for target in links(page):
        url = urlparse(target)
        if url.scheme:
            assert url.scheme in ("http", "https") and url.netloc and " " not in target, f"{page.name}: {target}"
            continue
        path = (page.parent / url.path).resolve() if url.path else page
        assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
        assert ROOT in path.parents or path == ROOT, f"{page.relative_to(ROOT)} links outside the repository: {target}"
        if url.fragment:
            assert path.suffix == ".md", f"{page.relative_to(ROOT)}: #anchor on a non-markdown file: {target}"
            assert url.fragment in anchors(path), (f"{page.relative_to(ROOT)} links to {target}: no such heading "
                                                   f"(headings: {sorted(anchors(path))})")


def test_the_slugs_are_githubs():
    assert slug("On a GPU: `benchmarks/gpu_check.sh`") == "on-a-gpu-benchmarksgpu_checksh"
    assert slug('CPU (`backend="cpu"`)') == "cpu-backendcpu"
    assert slug("The 28×28 MLPs: BatchNorm") == "the-2828-mlps-batchnorm"
    assert slug("Large batches: chunked steps (`--chunk-size`)") == "large-batches-chunked-steps---chunk-size"


def test_readme_is_a_short_front_page_that_says_which_python():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert ".venv/bin/python" in readme and "source .venv/bin/activate" in readme
    for doc in ("backends", "gpu", "training", "results"):
        assert f"docs/{doc}.md" in readme
