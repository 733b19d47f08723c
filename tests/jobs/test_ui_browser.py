"""The /ui page in headless Chromium against the real adapter (a uvicorn server, tiny models).

Skipped, saying what to install, where Debian's chromium or Playwright is missing. Screenshots
are kept under test-artifacts/ at the repo root; their paths are printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import make_app, sd_entry, serve
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, artifact, missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

TOKEN = "ui-test-token"


@pytest.fixture(scope="module")
def adapter_url(tmp_path_factory: pytest.TempPathFactory, tiny_sd: Path) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ui-browser")
    app = make_app(tmp, [sd_entry(tiny_sd, "test/tiny-sd")], auth_token=TOKEN)
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, adapter_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=adapter_url, viewport={"width": 1000, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.problems = problems
    yield page
    context.close()


def keep(page: Any, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = artifact(name)
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path


def test_the_page_loads_its_pickers_and_keeps_the_token(page: Any, capsys):
    page.goto("/ui")
    assert page.url.endswith("/ui/")
    pipeline = page.get_by_label("Pipeline")
    assert pipeline.input_value() == "text-to-image"
    assert page.get_by_label("Model").input_value() == "test/tiny-sd"
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Save").click()
    page.reload()
    assert page.get_by_label("API token").input_value() == TOKEN
    assert page.evaluate("localStorage.getItem('modal-ai-runner.token')") == TOKEN
    keep(page, "ui-start.png", capsys)
    # No script error and no policy violation (a CSP refusal is a console error).
    assert [p for p in page.problems if "404" not in p] == []


def test_the_page_fits_a_phone(browser: Any, adapter_url: str, capsys):
    context = browser.new_context(
        base_url=adapter_url, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = context.new_page()
    page.goto("/ui/")
    page.get_by_label("Pipeline").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    keep(page, "ui-phone.png", capsys)
    context.close()


def test_every_control_is_reached_by_keyboard(page: Any):
    page.goto("/ui/")
    page.get_by_label("Pipeline").wait_for()
    reached = set()
    for _ in range(25):
        page.keyboard.press("Tab")
        focused = "document.activeElement.id || document.activeElement.textContent"
        reached.add(page.evaluate(focused))
    assert {"token", "pipeline", "model", "prompt", "submit"} <= reached
