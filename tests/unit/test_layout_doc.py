"""docs/layout.md lists every module of the code with its size and job."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "persistence", "ml", "gateway", "bench")


def test_layout_page_lists_every_module() -> None:
    listed = set(re.findall(r"^\| `([^`]+\.py)` \|", (ROOT / "docs" / "layout.md").read_text(), re.M))
    modules = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    assert sorted(modules - listed) == [] and sorted(listed - modules) == []
