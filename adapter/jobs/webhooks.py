"""Webhooks of the jobs door: signed events POSTed when a job ends, from a durable outbox.

Signing follows Standard Webhooks (https://www.standardwebhooks.com/), so a receiver can verify
with that project's libraries or with `verify_signature` below:

    webhook-id:        <job id>-<delivery id>   (the same on every retry: dedupe on it)
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>

The key is ADAPTER_JOBS_WEBHOOK_SECRET: a `whsec_<base64>` secret (the standard's form, what its
libraries take) is base64-decoded; any other string is used as its UTF-8 bytes. The body is
`{"type": "job.succeeded", "timestamp": ..., "data": <the job's public JSON>}`.

Delivery never touches a job: the store queues the event in the transaction that ends the job,
and `WebhookSender` runs apart from the runner, polling the outbox. Each POST has a total time
limit; a 2xx is delivered, anything else (an error, a timeout, a redirect: none is followed) is
retried with exponential backoff and jitter, up to a number of attempts, then given up with its
last error logged. Delivery is at least once: a crash between the answer and the outbox update
sends the event again, with the same webhook-id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapter import __version__
from adapter.jobs.model import WebhookDelivery
from adapter.jobs.store.base import JobStore
from adapter.jobs.store.common import DELIVERY_HOLD_S
from contract.errors import BadRequestError, ConfigError

log = logging.getLogger(__name__)

SECRET_SETTING = "ADAPTER_JOBS_WEBHOOK_SECRET"
SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300  # the standard's five minutes either way
MAX_URL_LENGTH = 2048


# --- signing -------------------------------------------------------------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, else the string's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as error:
            raise ConfigError(f"{SECRET_SETTING}: whsec_ must be followed by base64.") from error
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ConfigError(f"{SECRET_SETTING} is empty.")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value of one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True when the request carries a valid signature of `body` (the raw bytes,
    before any JSON parsing) made with `secret`, timestamped within `tolerance_s` of now.

    `headers` may be any mapping (names are compared case-insensitively). Several signatures
    separated by spaces are accepted when one matches (a secret being rotated).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and stamp and signatures) or not stamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_s:
        return False  # a replay of an old request, or a clock far off
    expected = sign(secret, message_id, int(stamp), body).encode("ascii")
    return any(
        hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
        for candidate in signatures.split(" ")
    )


def event_payload(job: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The body of a job's event: its type from the job's status, and the job's public JSON."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "type": f"job.{job['status']}",
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "data": dict(job),
    }


def check_webhook_url(url: str | None, secret: str | None) -> str | None:
    """A submitted webhook URL, or BadRequestError: webhooks need a secret to sign with (the
    message names ADAPTER_JOBS_WEBHOOK_SECRET) and an http(s) URL with a host."""
    if url is None:
        return None
    if not secret:
        raise BadRequestError(
            f"This adapter sends no webhooks: {SECRET_SETTING} is not set (a secret to sign "
            "them with). Leave out `webhook`, or ask the operator to set it."
        )
    if len(url) > MAX_URL_LENGTH:
        raise BadRequestError(f"webhook: a URL of at most {MAX_URL_LENGTH} characters.")
    if any(char.isspace() or ord(char) < 0x20 for char in url):
        raise BadRequestError("webhook: the URL has a space or a control character.")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise BadRequestError(f"webhook: {url!r} is not an http:// or https:// URL with a host.")
    return url


# --- delivery ------------------------------------------------------------------------------


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds before the retry after failed attempt number `attempt` (1, 2, ...): base * 2^(n-1)
    up to the cap, then a random half of it taken off, so that receivers coming back from an
    outage are not hit by every sender at the same instant."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 60))
    return ceiling * (0.5 + 0.5 * rng.random())


class WebhookSender:
    """Polls the store's outbox and POSTs due events, at most `concurrency` at a time.

    `start()` in the app's lifespan, `stop()` at shutdown; `wake()` after a job ends sends its
    event without waiting for the next poll.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        secret: str,
        timeout_s: float = 10.0,
        max_attempts: int = 12,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 3600.0,
        concurrency: int = 8,
        poll_interval_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        secret_key(secret)  # a bad secret stops the start, not each delivery
        if timeout_s <= 0 or max_attempts < 1 or concurrency < 1 or backoff_base_s < 0:
            raise ConfigError(
                "Webhook settings: the timeout, attempts and concurrency must be positive."
            )
        if timeout_s >= DELIVERY_HOLD_S:
            # The store holds a fetched event this long; a longer attempt would let another
            # replica send it too.
            raise ConfigError(
                f"ADAPTER_JOBS_WEBHOOK_TIMEOUT_S must be under {DELIVERY_HOLD_S:g} s, not "
                f"{timeout_s:g}."
            )
        self.store = store
        self.secret = secret
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = max(backoff_cap_s, backoff_base_s)
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency),
            headers={"user-agent": f"modal-ai-runner/{__version__} (job webhooks)"},
        )
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), name="webhook-sender"
            )

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop polling; deliveries in flight are cancelled (their outbox rows are held a while
        by the store, then sent again by whichever process polls next)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    async def send_due(self) -> int:
        """One poll: start the deliveries that are due, as many as there are free slots; how
        many it started."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        due = await self.store.due_deliveries(self._clock(), free)
        started = 0
        for delivery in due:
            if delivery.id in self._in_flight:
                continue  # still being sent (a store whose hold is shorter than our timeout)
            task = asyncio.get_running_loop().create_task(self._deliver(delivery))
            self._in_flight[delivery.id] = task
            task.add_done_callback(functools.partial(self._finished, delivery.id))
            started += 1
        return started

    def _finished(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._wake.set()  # a slot is free: more may be due

    async def _run(self) -> None:
        while True:
            try:
                await self.send_due()
            except Exception:
                log.exception("Reading the webhook outbox failed; trying again")
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow stop()'s cancel.
            try:
                async with asyncio.timeout(self.poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        attempt = delivery.attempts + 1
        error = await self._post(delivery)
        try:
            if error is None:
                await self.store.delivered(delivery.id)
                log.info("Webhook of %s delivered (attempt %d)", delivery.job_id, attempt)
                return
            if attempt >= self.max_attempts:
                log.warning(
                    "Webhook of %s to %s given up after %d attempts; last error: %s",
                    delivery.job_id,
                    delivery.url,
                    attempt,
                    error,
                )
                await self.store.reschedule_delivery(delivery.id, None, error)
                return
            delay = backoff_s(attempt, self.backoff_base_s, self.backoff_cap_s, self._rng)
            log.info(
                "Webhook of %s failed (attempt %d: %s); next in %.1f s",
                delivery.job_id,
                attempt,
                error,
                delay,
            )
            next_at = self._clock() + timedelta(seconds=delay)
            await self.store.reschedule_delivery(delivery.id, next_at, error)
        except Exception:
            # The store's hold on the row runs out and the event is sent again: at least once.
            log.exception("Recording the webhook attempt of %s failed", delivery.job_id)

    async def _post(self, delivery: WebhookDelivery) -> str | None:
        """None when the receiver answered 2xx, else what went wrong."""
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
        message_id = f"{delivery.job_id}-{delivery.id}"
        headers = signed_headers(self.secret, message_id, body, int(time.time()))
        headers["content-type"] = "application/json"
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange (a receiver
            # sending its answer a byte at a time).
            async with asyncio.timeout(self.timeout_s):
                request = self._client.stream("POST", delivery.url, content=body, headers=headers)
                async with request as response:  # its body is never read: it may be huge
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as failure:
            return (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"
