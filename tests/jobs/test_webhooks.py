"""Webhooks: the signature (checked against Standard Webhooks' own library), the refusals at
submission, and delivery from the SQLite store's outbox to real receivers over HTTP: one down at
first, one that never answers, one that always fails."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from adapter.jobs.model import JobRecord, JobStatus
from adapter.jobs.store.sqlite import SqliteJobStore
from adapter.jobs.webhooks import (
    WebhookSender,
    backoff_s,
    check_webhook_url,
    event_payload,
    sign,
    signed_headers,
    verify_signature,
)
from contract.errors import BadRequestError, ConfigError
from tests.support.jobs_store import new_job, raw_rows
from tests.support.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = b'{"type":"job.succeeded","data":{"id":"job_1"}}'

# --- signing -------------------------------------------------------------------------------


def test_the_reference_library_verifies_our_signature_and_we_verify_its() -> None:
    now = int(time.time())
    headers = signed_headers(SECRET, "job_1-7", BODY, now)
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    theirs = Webhook(SECRET).sign("job_1-7", datetime.fromtimestamp(now, UTC), BODY.decode())
    assert theirs == headers["webhook-signature"]
    assert verify_signature(SECRET, headers, BODY)


def test_a_plain_secret_is_its_utf8_bytes() -> None:
    digest = hmac.new(b"plain secret", b"m.1700000000." + BODY, hashlib.sha256).digest()
    assert (
        sign("plain secret", "m", 1_700_000_000, BODY) == "v1," + base64.b64encode(digest).decode()
    )


def test_verification_refuses_any_change_and_old_requests() -> None:
    now = 1_700_000_000
    headers = signed_headers(SECRET, "job_1-7", BODY, now)
    assert verify_signature(SECRET, headers, BODY, now=now + 299)
    # Header names in any case, as a server hands them over.
    assert verify_signature(SECRET, {k.title(): v for k, v in headers.items()}, BODY, now=now)
    assert not verify_signature(SECRET, headers, BODY + b" ", now=now)
    assert not verify_signature("whsec_" + base64.b64encode(b"x" * 32).decode(), headers, BODY)
    assert not verify_signature(SECRET, {**headers, "webhook-id": "job_1-8"}, BODY, now=now)
    later = {**headers, "webhook-timestamp": str(now + 1)}
    assert not verify_signature(SECRET, later, BODY, now=now)
    assert not verify_signature(SECRET, headers, BODY, now=now + 301)  # a replay
    assert not verify_signature(SECRET, headers, BODY, tolerance_s=10, now=now - 11)
    for missing in headers:
        partial = {k: v for k, v in headers.items() if k != missing}
        assert not verify_signature(SECRET, partial, BODY, now=now)
    # While a secret rotates, one matching signature of several is enough.
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify_signature(SECRET, rotated, BODY, now=now)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_a_bad_secret_names_the_setting(secret: str) -> None:
    with pytest.raises(ConfigError, match="ADAPTER_JOBS_WEBHOOK_SECRET"):
        sign(secret, "m", 1, BODY)


def test_the_event_is_typed_by_the_jobs_status() -> None:
    job = {"id": "job_1", "status": "failed", "error": {"message": "x", "retryable": False}}
    event = event_payload(job, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert event == {"type": "job.failed", "timestamp": "2026-01-02T03:04:05Z", "data": job}


# --- refusals at submission ----------------------------------------------------------------


def test_a_webhook_without_a_secret_is_refused_naming_the_setting() -> None:
    assert check_webhook_url(None, None) is None
    with pytest.raises(BadRequestError, match="ADAPTER_JOBS_WEBHOOK_SECRET"):
        check_webhook_url("https://example.com/hook", None)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https:///path",
        "example.com/hook",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_a_webhook_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(BadRequestError, match="webhook"):
        check_webhook_url(url, SECRET)


def test_an_http_url_is_accepted() -> None:
    for url in ["https://example.com/hook?x=1", "http://10.0.0.2:8080/a"]:
        assert check_webhook_url(url, SECRET) == url


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (8, 600), (40, 600)]:
        for _ in range(20):
            assert ceiling / 2 <= backoff_s(attempt, 5, 600, rng) <= ceiling


def test_settings_that_could_never_deliver_are_refused(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    for bad in [{"timeout_s": 0}, {"max_attempts": 0}, {"concurrency": 0}]:
        with pytest.raises(ConfigError):
            WebhookSender(store, secret=SECRET, **bad)
    with pytest.raises(ConfigError, match="ADAPTER_JOBS_WEBHOOK_SECRET"):
        WebhookSender(store, secret="")
    with pytest.raises(ConfigError, match="ADAPTER_JOBS_WEBHOOK_TIMEOUT_S"):
        WebhookSender(store, secret=SECRET, timeout_s=60)


# --- delivery to real receivers -----------------------------------------------------------


async def ended_job(store: SqliteJobStore, url: str) -> JobRecord:
    """A job with a webhook that ran and succeeded (its event is in the outbox)."""
    job, _ = await store.create(new_job(webhook=url))
    claimed = await store.claim("worker-1", 60)
    assert claimed is not None and claimed.id == job.id
    view = {"id": job.id, "status": "succeeded", "result": {"data": {"seed": 1}}}
    ended = await store.finish(
        job.id, "worker-1", JobStatus.SUCCEEDED, webhook_payload=event_payload(view)
    )
    assert ended is not None
    return ended


async def wait_until(condition: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def outbox(db: Path, job_id: str) -> tuple[Any, ...]:
    """(attempts, next_attempt_at, delivered_at, last_error) of the job's event."""
    sql = "SELECT attempts, next_attempt_at, delivered_at, last_error FROM webhook_outbox"
    return raw_rows(f"sqlite:///{db}", f"{sql} WHERE job_id = '{job_id}'")[0]


def fast_sender(store: SqliteJobStore, **overrides: Any) -> WebhookSender:
    settings: dict[str, Any] = {
        "timeout_s": 2.0,
        "max_attempts": 20,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "poll_interval_s": 0.05,
    }
    return WebhookSender(store, secret=SECRET, **(settings | overrides))


def test_a_receiver_down_at_first_gets_the_signed_event_once_it_is_up(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    receiver = Receiver(statuses=[503, 200])

    async def scenario() -> JobRecord:
        store = SqliteJobStore(db)
        await store.open()
        job = await ended_job(store, receiver.url)
        sender = fast_sender(store)
        sender.start()
        try:
            # Nothing listens on its port yet: connections refused, retried with backoff.
            await wait_until(lambda: outbox(db, job.id)[0] >= 2)
            assert receiver.requests == []
            await receiver.start()  # up, answering 503 once, then 200
            await wait_until(lambda: receiver.answered_ok)
            await asyncio.sleep(0.5)  # time enough for any second send
        finally:
            await sender.stop()
            await receiver.stop()
            await store.close()
        return job

    job = asyncio.run(scenario())
    assert [request.status for request in receiver.requests] == [503, 200]
    delivered = receiver.answered_ok[0]
    assert verify_signature(SECRET, delivered.headers, delivered.body)
    assert Webhook(SECRET).verify(delivered.body, delivered.headers)["data"]["id"] == job.id
    event = json.loads(delivered.body)
    assert event["type"] == "job.succeeded" and event["data"]["status"] == "succeeded"
    assert delivered.headers["content-type"] == "application/json"
    # One event, one id on every attempt: a receiver can dedupe on it.
    assert {request.headers["webhook-id"] for request in receiver.requests} == {f"{job.id}-1"}
    attempts, next_attempt_at, delivered_at, _ = outbox(db, job.id)
    assert attempts >= 4 and next_attempt_at is None and delivered_at is not None


def test_a_receiver_that_never_answers_delays_nothing_else(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    hanging, good = Receiver(hang=True), Receiver()

    async def scenario() -> tuple[JobRecord, JobRecord, float]:
        store = SqliteJobStore(db)
        await store.open()
        await hanging.start()
        await good.start()
        stuck = await ended_job(store, hanging.url)  # first in the outbox
        fine = await ended_job(store, good.url)
        # 3 s: room for the good delivery to finish, on a loaded CPU, while the stuck one waits.
        sender = fast_sender(store, timeout_s=3.0, max_attempts=2)
        started = time.monotonic()
        sender.start()
        try:
            await wait_until(lambda: good.answered_ok)
            good_after = time.monotonic() - started
            # Before the stuck one's first attempt even ran out.
            assert outbox(db, stuck.id)[0] == 0
            # The stuck event's job ended long ago and stays ended.
            job = await store.get(stuck.id)
            assert job is not None and job.status is JobStatus.SUCCEEDED
            await wait_until(lambda: outbox(db, stuck.id)[1] is None, 30)  # given up
        finally:
            await sender.stop()
            await hanging.stop()
            await good.stop()
            await store.close()
        return stuck, fine, good_after

    stuck, fine, good_after = asyncio.run(scenario())
    assert good_after < 3.0  # sent while the other waited for its answer
    assert len(good.requests) == 1
    assert len(hanging.requests) == 2  # both attempts, each timed out
    attempts, next_attempt_at, delivered_at, last_error = outbox(db, stuck.id)
    assert (attempts, next_attempt_at, delivered_at) == (2, None, None)
    assert last_error == "no answer within 3 s"
    assert outbox(db, fine.id)[2] is not None


def test_deliveries_in_flight_are_bounded(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    hanging = Receiver(hang=True)

    async def scenario() -> list[JobRecord]:
        store = SqliteJobStore(db)
        await store.open()
        await hanging.start()
        jobs = [await ended_job(store, hanging.url) for _ in range(5)]
        # 2 s: each request reaches the receiver before its attempt times out, even under load.
        sender = fast_sender(store, timeout_s=2.0, max_attempts=1, concurrency=2)
        sender.start()
        try:
            await wait_until(lambda: all(outbox(db, job.id)[0] == 1 for job in jobs), 30)
        finally:
            await sender.stop()
            await hanging.stop()
            await store.close()
        return jobs

    asyncio.run(scenario())
    assert len(hanging.requests) == 5
    assert hanging.most_open == 2


def test_a_failing_receiver_is_given_up_with_its_last_error_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "jobs.sqlite3"
    receiver = Receiver(statuses=[500, 302])  # a redirect is an answer, not followed

    async def scenario() -> JobRecord:
        store = SqliteJobStore(db)
        await store.open()
        await receiver.start()
        job = await ended_job(store, receiver.url)
        sender = fast_sender(store, max_attempts=3)
        sender.start()
        try:
            await wait_until(lambda: outbox(db, job.id)[0] == 3)
            await asyncio.sleep(0.3)
        finally:
            await sender.stop()
            await receiver.stop()
            await store.close()
        return job

    with caplog.at_level(logging.INFO, logger="adapter.jobs.webhooks"):
        job = asyncio.run(scenario())
    assert [(r.path, r.status) for r in receiver.requests] == [
        ("/hook", 500),
        *[("/hook", 302)] * 2,
    ]
    assert outbox(db, job.id) == (3, None, None, "HTTP 302")
    gave_up = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(gave_up) == 1
    assert "given up after 3 attempts; last error: HTTP 302" in gave_up[0].getMessage()
