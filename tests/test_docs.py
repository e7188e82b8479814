"""The documentation: the README stays short and true, and the MkDocs site builds strictly.

`mkdocs build --strict` fails on a broken link, a missing anchor, a missing snippet or an API
reference (`::: name`) that does not resolve; the tests below add what it does not check: every
page of the nav is built and holds its content, the API page holds known functions, and the
README (outside the site) has short, working links and the set-up commands CI runs.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _nav_pages() -> list[tuple[str, str]]:
    """(title, file) of every page in mkdocs.yml's nav."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = []
    for entry in config["nav"]:
        (title, page), = entry.items()
        pages.append((title, page))
    return pages


def _visible_text(html_text: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html_text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _built_file(site: Path, page: str) -> Path:
    stem = page[:-len(".md")]
    return site / "index.html" if stem == "index" else site / stem / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_every_nav_page_is_built_with_its_title(site):
    pages = _nav_pages()
    assert {page for _, page in pages} == {p.name for p in DOCS.glob("*.md")}, \
        "every docs/*.md page is in mkdocs.yml's nav and every nav page exists"
    for title, page in pages:
        text = _visible_text(_built_file(site, page).read_text())
        heading = _HEADING.search((DOCS / page).read_text()).group(1).replace("`", "")
        assert _squeezed(heading) in _squeezed(text) and title in text, \
            f"{page}: heading or nav title not in the site"
        assert len(text) > 2000, f"{page}: the built page is nearly empty"


def test_api_page_documents_the_public_functions(site):
    html = (site / "api" / "index.html").read_text()
    for name in ("hwmodels.load_board", "hwmodels.simulate", "hwmodels.BlockShape",
                 "codesign.study.load_study", "codesign.sweep.evaluate_hardware",
                 "codesign.accuracy.measure", "codesign.masks.load_masks",
                 "codesign.checkpoints.load_model", "codesign.workload.encoder_workload"):
        assert f'id="{name}"' in html, f"{name} is missing from the API page"


def test_snippets_from_the_readme_are_included(site):
    index = _squeezed(_visible_text((site / "index.html").read_text()))
    architecture = _squeezed(_visible_text((site / "architecture" / "index.html").read_text()))
    for text in ("pip install -e '.[dev]'", "python -m pytest -q"):
        assert _squeezed(text) in index, text
    for text in ("codesign.sweep (space", "codesign.cli: thin commands over the library"):
        assert _squeezed(text) in architecture, text
    assert "--8<--" not in index and "--8<--" not in architecture


def test_readme_is_short_and_holds_the_setup_and_main_commands():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
    for command in ("pip install -e '.[dev]'", "python -m pytest -q",
                    "codesign sweep studies/fpga_zcu102.yaml", "mkdocs serve",
                    "mkdocs build --strict", "](docs/pareto_zcu102.png)"):
        assert command in text, command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q\n" in ci and "pip install -q -e '.[dev]'" in ci, \
        ".ci/run must run the README's set-up and test commands"


def _slug(heading: str) -> str:
    """The anchor MkDocs (python-markdown toc) gives a heading: what GitHub gives it too."""
    text = _CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading).replace("`", "")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _links(path: Path) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", path.read_text()))
    return [target for target in _LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


@pytest.mark.parametrize("path", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_point_at_existing_files_and_headings(path):
    for target in _links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), f"{path.name}: link {target} points at a missing file"
        if anchor and dest.suffix == ".md" and dest.name != "api.md":
            slugs = {_slug(h) for h in _HEADING.findall(_FENCE.sub("", dest.read_text()))}
            assert anchor in slugs, f"{path.name}: link {target}: no heading #{anchor} in {dest.name}"


def test_readme_images_exist_and_are_pngs():
    images = [t for t in _links(README) if t.endswith(".png")]
    assert images, "the README shows the headline study's picture"
    for target in images:
        assert (ROOT / target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
