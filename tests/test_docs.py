"""The documentation says what the code does: the configuration page is the one the Settings definition
generates, and every relative link of the README, CONTRIBUTING.md and the docs pages points somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs import config_doc

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def test_configuration_page_is_what_the_settings_generate():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == config_doc.render(), (
        "docs/configuration.md differs from the Settings definition: run `make docs` "
        "(python -m jobs.config_doc > docs/configuration.md) and commit the result"
    )


def test_every_setting_is_on_the_configuration_page():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in config_doc.Settings.__dataclass_fields__:
        if name in config_doc.config.NOT_SETTINGS:  # the process's environment, not a setting
            assert f"`MLOPS_{name.upper()}`" not in page, name
            continue
        assert f"`MLOPS_{name.upper()}`" in page, name


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_what_exists(page: Path):
    assert page.exists(), f"{page.relative_to(ROOT)} is missing"
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ... not ours to check here
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(
                f"{target}: no {resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved}"
            )
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("See [this](missing.md) and `[not](a-link.md)`.\n```\n[nor](this.md)\n```\n")
    assert links(page) == ["missing.md"]
    assert slug("What a run gives back: the trained model") == "what-a-run-gives-back-the-trained-model"
