"""Hand-written docs: the pages the README promises exist, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_documented_pages_exist() -> None:
    for name in ("getting-started", "configuration", "cli", "architecture", "troubleshooting"):
        assert (ROOT / "docs" / f"{name}.md").is_file()
    for name in ("memory", "teams", "security"):
        assert (ROOT / "docs" / f"{name}.md").is_file()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    targets = _LINK.findall(page.read_text(encoding="utf-8"))
    broken = [t for t in targets if "://" not in t and not (page.parent / t).resolve().exists()]
    assert not broken, f"{page.name}: broken links {broken}"


def test_readme_links_the_security_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/security.md)" in text
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for topic in ("## Who can call which listener", "### What a web page can do", "### Team mode"):
        assert topic in security
    assert "## Reporting a problem" in security


def test_readme_keeps_the_quickstart() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make up " in text and "make test " in text


def test_request_path_is_documented_in_order() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    steps = [
        "ingress",
        "identify",
        "authorize",
        "recall",
        "inject",
        "upstream",
        "respond",
        "record",
    ]
    positions = [text.find(f"**{step}**") for step in steps]
    assert -1 not in positions and positions == sorted(positions)


def test_troubleshooting_covers_every_doctor_area() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    areas = ["config", "env conflicts", "daemon", "ports", "store", "redis", "upstreams"]
    for area in [*areas, "memory", "cookies"]:
        assert f"\n## {area}\n" in text
