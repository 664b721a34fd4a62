"""The README and docs/: every relative link and image resolves (a #anchor to a heading of its target),
no placeholder text is left, the README stays a short front door, and docs/api.md names every endpoint."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = ("api.md", "hosting.md", "how-it-works.md", "training.md", "testing.md")
README_MAX_LINES = 200
PLACEHOLDERS = re.compile(r"\b(TODO|TBD|FIXME|XXX+|TESTTIME)\b|lorem ipsum|\blorem\b", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a Markdown text (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """The relative links of a page whose file (or #anchor in it) does not exist."""
    bad = []
    for line in prose_lines(text):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):   # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                bad.append(f"{target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                bad.append(f"{target} (no such heading in {dest.name})")
    return bad


def test_the_docs_named_in_the_readme_exist_and_are_linked_from_it():
    readme = (ROOT / "README.md").read_text()
    for name in DOCS:
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
        assert f"(docs/{name})" in readme, f"the README does not link docs/{name}"


def test_the_readme_is_a_short_front_door_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "`make demo`" in text and "`make test`" in text
    assert "](docs/draw-tab.png)" in text   # the screenshot


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(page):
    assert broken_links(page, page.read_text()) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_placeholder_text_is_left(page):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(page.read_text().splitlines(), 1)
            if PLACEHOLDERS.search(line)]
    assert hits == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    (tmp_path / "there.md").write_text("# A heading: with `code`, and more\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    text = ("[ok](there.md) [ok](there.md#a-heading-with-code-and-more) ![gone](missing.png)\n"
            "[bad](there.md#not-a-heading) [web](https://example.org/x) `[in code](nowhere.md)`\n"
            "```\n[in a block](nowhere.md)\n```\n")
    assert broken_links(page, text) == ["missing.png (no such file)",
                                        "there.md#not-a-heading (no such heading in there.md)"]
    assert anchors("## Why? (under it)\n## Why? (under it)\n") == {"why-under-it", "why-under-it-1"}
    assert all(PLACEHOLDERS.search(s) for s in ("TODO: x", "about TESTTIME", "tbd", "Lorem ipsum"))
    assert not PLACEHOLDERS.search("todos, a textbook, 7,416 parameters")


def test_the_api_page_names_every_endpoint_the_app_registers():
    sources = [ROOT / "demo.py", *sorted((ROOT / "mnist_web").rglob("*.py"))]
    names = {n for p in sources for n in re.findall(r"api_name=[\"']([\w/]+)[\"']", p.read_text())}
    assert {"classify", "classify_strokes", "train", "unit"} <= names   # the scan itself finds them
    api = (ROOT / "docs" / "api.md").read_text()
    assert sorted(n for n in names if f"### /{n.lstrip('/')}" not in api) == []
    for route in ("GET /mnist/weights", "GET /mnist/unit", "POST /mnist/activations", "GET /queue_status"):
        assert f"### {route}" in api
