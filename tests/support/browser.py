"""Headless Chromium, as a person's browser: a page's screenshot, or its DOM after its scripts ran."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is needed: apt-get install -y chromium (make test installs it)"
    return found


def screenshot(url: str, shot: Path, profile: Path, width: int = 1400, height: int = 1000) -> Path:
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            f"--window-size={width},{height}",
            url,
        ],  # fmt: skip
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), f"chromium made no screenshot of {url}"
    return shot


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM as its scripts left it (``--dump-dom`` runs them first)."""
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout
