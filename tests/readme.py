"""The README, one section at a time: tests keep each section's examples and tables true."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(heading: str) -> str:
    """The text under ``heading`` (a full ``## ...`` line), up to the next ``## `` heading."""
    text = README.read_text()
    assert heading in text, f"README.md has no section {heading!r}"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]
