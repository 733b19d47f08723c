"""Headless Chromium for the /ui page's tests: Debian's `chromium` driven by Playwright.

Playwright's own browser download is never used: it fetches a browser build from the internet,
which CI cannot reach. The distribution's chromium is launched by path instead.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
# No GPU, no QUIC, nothing fetched in the background: the browser talks to the test's server only.
CHROMIUM_ARGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)


def missing() -> str | None:
    """Why the browser tests cannot run here (what to install), or None when they can."""
    needs = []
    if not (CHROMIUM.exists() or shutil.which("chromium")):
        needs.append("Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        needs.append("Playwright for Python (pip install -e '.[dev]', which pins playwright)")
    if not needs:
        return None
    return "the /ui browser test needs " + " and ".join(needs) + "; never `playwright install`"


def artifact(name: str) -> Path:
    """Where a screenshot of this run goes (test-artifacts/ at the repo root, gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
