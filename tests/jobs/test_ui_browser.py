"""The /ui page in headless Chromium against the real adapter: a uvicorn server on a free port,
the jobs door on SQLite and a local output folder in tmp, tiny random-weight models.

Skipped, saying what to install, where Debian's chromium or Playwright is missing. Screenshots
are kept under test-artifacts/ at the repo root; their paths are printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.jobs.settings import JobsSettings
from tests.support.apps import llm_entry, make_app, model_entry, sd_entry, serve, whisper_entry
from tests.support.audio import wav
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, artifact, missing
from tests.support.services import unavailable


@pytest.fixture(autouse=True)
def _browser_present() -> None:
    reason = missing()
    if reason is not None:
        unavailable(reason)


TOKEN = "ui-test-token"
WAIT_MS = 120_000  # a job on two shared CPU cores; never a timing assertion
# Every value the progress bar takes, recorded in the page as it changes.
RECORD_PROGRESS = """() => {
  const bar = document.getElementById("progress");
  window.progressSeen = [];
  new MutationObserver(() => window.progressSeen.push(bar.value))
    .observe(bar, {attributes: true, attributeFilter: ["value"]});
}"""


@pytest.fixture(scope="module")
def adapter_url(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_sd: Path,
    tiny_wan: Path,
    tiny_llm: Path,
    tiny_whisper: Path,
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ui-browser")
    jobs = JobsSettings(
        enabled=True,
        database_url=f"sqlite:///{tmp / 'jobs.sqlite3'}",
        outputs_url=f"file://{tmp / 'outputs'}",
        concurrency=1,  # one job at a time: the next one queues behind it
        poll_interval_s=0.05,
        events_max_s=1.0,  # streams close early: the page opens them again
    )
    app = make_app(
        tmp,
        [
            sd_entry(tiny_sd, "test/tiny-sd"),
            model_entry("image-to-image", tiny_sd, "test/tiny-sd-img2img"),
            model_entry("text-to-video", tiny_wan, "test/tiny-wan"),
            llm_entry(tiny_llm, "test/tiny-llm"),
            whisper_entry(tiny_whisper, "test/tiny-whisper"),
        ],
        auth_token=TOKEN,
        jobs=jobs,
        data_dir=tmp,
        limits={"max_inference_steps": 5000},  # the slow job of the cancel test
    )
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


def api(adapter_url: str) -> httpx.Client:
    return httpx.Client(base_url=adapter_url, headers={"Authorization": f"Bearer {TOKEN}"})


def keep(page: Any, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = artifact(name)
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path


def signed_in(page: Any) -> Any:
    page.goto("/ui")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Save").click()
    return page


def fill_job(page: Any, prompt: str, **params: int) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    if not page.locator("#options").evaluate("details => details.open"):
        page.locator("#options summary").click()
    for name, value in params.items():
        page.get_by_label(name.replace("_", " ").capitalize(), exact=True).fill(str(value))


def status(page: Any) -> Any:
    return page.locator("#job-status")


def test_the_page_loads_its_pickers_and_keeps_the_token(page: Any, capsys):
    signed_in(page)
    assert page.url.endswith("/ui/")
    assert page.get_by_label("Pipeline").input_value() == "text-to-image"
    assert page.get_by_label("Model").input_value() == "test/tiny-sd"
    page.reload()
    assert page.get_by_label("API token").input_value() == TOKEN
    assert page.evaluate("localStorage.getItem('modal-ai-runner.token')") == TOKEN
    keep(page, "ui-start.png", capsys)
    # No script error and no policy violation (a CSP refusal is a console error).
    assert page.problems == []


def test_submit_watch_the_progress_see_the_image_and_enhance(page: Any, adapter_url: str, capsys):
    from playwright.sync_api import expect

    signed_in(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    fill_job(page, "a lighthouse at dusk", width=64, height=64, num_inference_steps=30)
    page.evaluate(RECORD_PROGRESS)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    first = page.locator("#job-id").inner_text()
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100 and page.locator("#progress").get_attribute("aria-valuetext") == "100%"
    expect(page.locator("#job-step")).to_have_text("Step 30 of 30")
    # Followed by its event stream, not by polling.
    assert any(url.endswith(f"/v1/jobs/{first}/events") for url in asked)
    assert not any(url.endswith(f"/v1/jobs/{first}") for url in asked)
    image = page.locator("#output img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 64
    assert "lighthouse" in (image.get_attribute("alt") or "")
    keep(page, "ui-text-to-image.png", capsys)

    page.get_by_role("button", name="Enhance").click()
    expect(page.locator("#job-about")).to_contain_text(f"enhanced from {first}", timeout=WAIT_MS)
    second = page.locator("#job-id").inner_text()
    assert second != first
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    expect(page.locator("#output img")).to_be_visible()
    items = page.locator("#history li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("enhance")
    expect(items.first).to_have_attribute("aria-current", "true")
    with api(adapter_url) as client:
        enhanced = client.get(f"/v1/jobs/{second}").json()
    assert enhanced["parent_id"] == first
    assert enhanced["params"]["prompt"] == "a lighthouse at dusk"
    keep(page, "ui-enhanced.png", capsys)
    assert page.problems == []


def test_text_to_video_plays_in_a_video_element(page: Any, capsys):
    from playwright.sync_api import expect

    signed_in(page)
    page.get_by_label("Pipeline").select_option("text-to-video")
    assert page.get_by_label("Model").input_value() == "test/tiny-wan"
    small = {"height": 48, "width": 64, "num_frames": 9, "fps": 4, "num_inference_steps": 2}
    fill_job(page, "a paper boat on a river", **small)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    video = page.locator("#output video")
    expect(video).to_be_visible()
    started = video.evaluate("v => v.currentTime")
    page.wait_for_function(
        """([v, t]) => !v.error && v.readyState >= 2 && v.currentTime !== t""",
        arg=[video.element_handle(), started],
        timeout=WAIT_MS,
    )
    playing = video.evaluate(
        "v => ({error: v.error, paused: v.paused, width: v.videoWidth, ready: v.readyState})"
    )
    assert playing == {"error": None, "paused": False, "width": 64, "ready": playing["ready"]}
    assert playing["ready"] >= 2
    keep(page, "ui-text-to-video.png", capsys)
    assert page.problems == []


def test_an_image_pipeline_takes_an_upload(page: Any, tmp_path: Path, capsys):
    from PIL import Image
    from playwright.sync_api import expect

    picture = tmp_path / "input.png"
    Image.new("RGB", (64, 48), (200, 120, 30)).save(picture)
    signed_in(page)
    page.get_by_label("Pipeline").select_option("image-to-image")
    upload = page.get_by_label("Image", exact=True)
    assert "image/png" in (upload.get_attribute("accept") or "")
    fill_job(page, "the same, at night", num_inference_steps=3)
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("alert")).to_contain_text('Choose a file for "image"')
    upload.set_input_files(str(picture))
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    image = page.locator("#output img")
    expect(image).to_be_visible()
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    keep(page, "ui-image-to-image.png", capsys)


def test_a_text_answer_is_shown_as_text(page: Any):
    from playwright.sync_api import expect

    signed_in(page)
    page.get_by_label("Pipeline").select_option("llm")
    fill_job(page, "Say hello", max_tokens=8)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    expect(page.locator("#output pre.text")).to_be_attached()
    # Tokens, out of the most allowed (a sampled answer may end at EOS sooner).
    expect(page.locator("#job-step")).to_have_text(re.compile(r"^Token [1-8] of at most 8$"))
    expect(page.locator("#download")).to_have_text("Download response.json")
    assert page.locator("#enhance").is_hidden()  # an LLM job has nothing to enhance
    assert page.problems == []


def test_audio_to_text_takes_an_audio_file(page: Any, tmp_path: Path):
    from playwright.sync_api import expect

    recording = tmp_path / "speech.wav"
    recording.write_bytes(wav(0.5))
    signed_in(page)
    page.get_by_label("Pipeline").select_option("audio-to-text")
    assert page.get_by_label("Prompt", exact=True).is_hidden()  # it takes none
    upload = page.get_by_label("Audio", exact=True)
    assert "audio/*" in (upload.get_attribute("accept") or "")
    upload.set_input_files(str(recording))
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    expect(page.locator("#output pre.text")).to_be_attached()
    expect(page.locator("#download")).to_have_text("Download transcript.json")
    assert page.problems == []


def test_cancel_a_job_queued_behind_a_slow_one(page: Any, adapter_url: str, capsys):
    from playwright.sync_api import expect

    signed_in(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    fill_job(page, "slow", width=64, height=64, num_inference_steps=4000)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Running.", timeout=WAIT_MS)
    slow = page.locator("#job-id").inner_text()
    fill_job(page, "queued", width=64, height=64, num_inference_steps=2)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Queued: next to run.", timeout=WAIT_MS)
    queued = page.locator("#job-id").inner_text()
    assert queued != slow
    keep(page, "ui-queued.png", capsys)
    # Its stream closes after events_max_s while it waits: the page opens another, not a poll.
    streams = f"/v1/jobs/{queued}/events"
    for _ in range(300):
        if sum(url.endswith(streams) for url in asked) >= 2:
            break
        page.wait_for_timeout(100)
    assert sum(url.endswith(streams) for url in asked) >= 2
    assert not any(url.endswith(f"/v1/jobs/{queued}") for url in asked)

    page.locator("#job").get_by_role("button", name="Cancel").click()
    expect(status(page)).to_have_text("Canceled.", timeout=WAIT_MS)
    expect(page.locator(f'#history li[data-job="{queued}"] .badge')).to_have_text("canceled")
    # The slow one from its row in the history, by keyboard: the focus stays on its button while
    # the list refreshes around it (every 3 s while a job runs), and a running job stops.
    page.get_by_role("button", name=f"Cancel job {slow}").focus()
    page.wait_for_timeout(3500)
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == f"Cancel job {slow}"
    page.keyboard.press("Enter")
    expect(page.locator(f'#history li[data-job="{slow}"] .badge')).to_have_text(
        "canceled", timeout=WAIT_MS
    )
    keep(page, "ui-canceled.png", capsys)
    with api(adapter_url) as client:
        never_ran = client.get(f"/v1/jobs/{queued}").json()
    assert never_ran["status"] == "canceled" and never_ran["started_at"] is None
    assert page.problems == []


def test_without_the_event_stream_the_page_polls(page: Any, capsys):
    from playwright.sync_api import expect

    # A proxy that does not pass server-sent events through.
    page.route("**/events", lambda route: route.fulfill(status=502, body="Bad Gateway"))
    signed_in(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    fill_job(page, "polled", width=64, height=64, num_inference_steps=3)
    page.get_by_role("button", name="Submit").click()
    expect(status(page)).to_have_text("Done.", timeout=WAIT_MS)
    expect(page.locator("#output img")).to_be_visible()
    job = page.locator("#job-id").inner_text()
    assert any(url.endswith(f"/v1/jobs/{job}") for url in asked)


def test_an_api_error_is_shown_in_words(page: Any):
    from playwright.sync_api import expect

    signed_in(page)
    fill_job(page, "too many", width=64, height=64, num_inference_steps=9999)
    page.get_by_role("button", name="Submit").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("num_inference_steps=9999 is over the limit")
    page.get_by_label("API token").fill("wrong")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Submit").click()
    expect(alert).to_contain_text("Enter a valid API token")


def test_the_page_fits_a_phone(browser: Any, adapter_url: str, capsys):
    with api(adapter_url) as client:
        params = {"prompt": "a phone", "width": 64, "height": 64, "num_inference_steps": 2}
        submitted = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": params})
    job = submitted.json()["id"]
    context = browser.new_context(
        base_url=adapter_url, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    page = signed_in(context.new_page())
    page.locator(f'#history li[data-job="{job}"] button.open').click()
    page.locator("#output img").wait_for(timeout=WAIT_MS)
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
    # Every control has a label a screen reader reads out (the Options' ones too).
    unlabelled = page.evaluate(
        """[...document.querySelectorAll("input, select, textarea")]
            .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
            .map((c) => c.id || c.outerHTML)"""
    )
    assert unlabelled == []
