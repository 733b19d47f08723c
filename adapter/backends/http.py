"""The HTTP backend: forwards each request to a runner-contract service over the network.

The upstream is a runner container on the operator's machine (our runner image, or Livepeer's
own runner images) or another adapter. Each model names its upstream in `runner.upstream_url`,
like go-livepeer's `url`/`token`. Bodies keep their form (JSON stays JSON, multipart stays
multipart with the file part first), the upstream's error answers keep their status and body,
and LLM event streams are relayed event by event as they arrive. The upstream's `/health` is
polled and folded into ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from adapter.backends.base import ModelState, RunHooks
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import (
    ConfigError,
    InferenceError,
    RunnerError,
    ServiceUnavailableError,
    UpstreamError,
)
from contract.pipelines import PIPELINE_SPECS
from contract.schemas import LLMResponse, RequestModel, Upload

logger = logging.getLogger(__name__)

# Statuses of the contract whose bodies are the upstream's answer to pass on as they are.
PASSED_THROUGH = frozenset({400, 413, 415, 422, 500})
CONNECT_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 5.0


@dataclass
class _Upstream:
    url: str
    token: str
    state: ModelState = ModelState.LOADING
    ever_reached: bool = False


def _form_value(value: Any) -> str:
    """A form field as go-livepeer writes it: floats `%f`, bools `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


def _multipart(
    request: RequestModel,
) -> tuple[list[tuple[str, tuple[str, bytes, str]]], dict[str, str]]:
    # The file parts as go-livepeer writes them (CreateFormFile: application/octet-stream).
    uploads = {name: value for name, value in request if isinstance(value, Upload)}
    files = [
        (name, (upload.filename or name, upload.data, "application/octet-stream"))
        for name, upload in uploads.items()
    ]
    data = {
        name: _form_value(value)
        for name, value in request.model_dump(exclude=set(uploads), exclude_none=True).items()
    }
    return files, data


class HTTPBackend:
    def __init__(
        self,
        settings: Settings,
        models: list[ServedModel],
        startup_grace_s: float = 120.0,
    ) -> None:
        self.settings = settings
        self.poll_interval_s = settings.upstream_poll_interval_s
        # go-livepeer polls /health for two minutes at registration and gives up on ERROR:
        # an upstream not yet reachable reads as LOADING for that long.
        self.startup_grace_s = startup_grace_s
        self._upstreams: dict[str, _Upstream] = {}
        for model in models:
            if model.runner.upstream_url:
                url = model.runner.upstream_url.rstrip("/")
                self._upstreams.setdefault(url, _Upstream(url, model.runner.upstream_token))
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        self._poller: asyncio.Task[None] | None = None
        self._started_at = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------------

    def check(self, models: list[ServedModel]) -> None:
        for model in models:
            if not model.runner.upstream_url:
                raise ConfigError(
                    f"{model.key}: field 'runner.upstream_url': required with the http backend "
                    "(the runner-contract URL that serves this model)"
                )

    async def start(self) -> None:
        self._started_at = time.monotonic()
        self._poller = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._client.aclose()

    def state(self, model: ServedModel) -> ModelState:
        return self._upstream(model).state

    # --- health --------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._poll(up) for up in self._upstreams.values()))
            await asyncio.sleep(self.poll_interval_s)

    async def _poll(self, upstream: _Upstream) -> None:
        try:
            response = await self._client.get(
                f"{upstream.url}/health", headers=self._auth(upstream), timeout=HEALTH_TIMEOUT_S
            )
            body = response.json() if response.status_code == 200 else None
            status = body.get("status") if isinstance(body, dict) else None
        except Exception as exc:  # whatever the upstream does, the poller must live on
            status, error = None, f"unreachable: {exc!r}"
        else:
            error = "" if status else f"/health answered HTTP {response.status_code}"
        previous = upstream.state
        if status in ("OK", "IDLE"):
            upstream.state, upstream.ever_reached = ModelState.READY, True
        elif status == "LOADING":
            upstream.state, upstream.ever_reached = ModelState.LOADING, True
        elif status == "ERROR":
            upstream.state, error = ModelState.FAILED, "its /health reports ERROR"
        else:
            self._mark_unreachable(upstream)
        if upstream.state is not previous:
            logger.warning(
                "upstream %s: %s -> %s %s",
                upstream.url,
                previous.value,
                upstream.state.value,
                error,
            )

    def _mark_unreachable(self, upstream: _Upstream) -> None:
        if upstream.ever_reached or time.monotonic() - self._started_at > self.startup_grace_s:
            upstream.state = ModelState.FAILED

    # --- serving -------------------------------------------------------------------------

    def _upstream(self, model: ServedModel) -> _Upstream:
        assert model.runner.upstream_url is not None
        return self._upstreams[model.runner.upstream_url.rstrip("/")]

    @staticmethod
    def _auth(upstream: _Upstream) -> dict[str, str]:
        return {"Authorization": f"Bearer {upstream.token}"} if upstream.token else {}

    def _build(self, model: ServedModel, request: RequestModel) -> httpx.Request:
        spec = PIPELINE_SPECS[model.pipeline]
        upstream = self._upstream(model)
        # The adapter resolved an empty model_id to its default: the upstream is told which.
        request = request.model_copy(update={spec.model_field: model.model_id})
        url = f"{upstream.url}/{model.pipeline.value}"
        timeout = httpx.Timeout(model.request_timeout_s, connect=CONNECT_TIMEOUT_S)
        headers = self._auth(upstream)
        if spec.body == "json":
            body = request.model_dump(mode="json", exclude_none=True)
            return self._client.build_request(
                "POST", url, json=body, headers=headers, timeout=timeout
            )
        files, data = _multipart(request)
        return self._client.build_request(
            "POST", url, files=files, data=data, headers=headers, timeout=timeout
        )

    async def run(
        self, model: ServedModel, request: RequestModel, hooks: RunHooks | None = None
    ) -> BaseModel:
        """No hook is called: the upstream runner does not report its steps."""
        spec = PIPELINE_SPECS[model.pipeline]
        with self._translate_errors(model):
            response = await self._client.send(self._build(model, request))
        _raise_for_status(model, response, self.settings.retry_after_s)
        try:
            return spec.response.model_validate_json(response.content)
        except ValidationError as exc:
            raise InferenceError(
                f"The upstream runner for {model.model_id} answered an invalid "
                f"{spec.response.__name__}."
            ) from exc

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        with self._translate_errors(model):
            response = await self._client.send(self._build(model, request), stream=True)
        try:
            if response.status_code != 200:
                with self._translate_errors(model):
                    await response.aread()
                _raise_for_status(model, response, self.settings.retry_after_s)
            with self._translate_errors(model):
                async for line in response.aiter_lines():
                    chunk = _parse_event(model, line)
                    if chunk is _DONE:
                        return
                    if chunk is not None:
                        yield chunk
            raise InferenceError(
                f"The upstream runner for {model.model_id} ended the stream early."
            )
        finally:
            # Closing the upstream response is what stops the upstream's generation.
            await response.aclose()

    @contextlib.contextmanager
    def _translate_errors(self, model: ServedModel) -> Iterator[None]:
        """httpx's errors, translated into ours: unreachable is 503, a stalled answer 500."""
        upstream = self._upstream(model)
        try:
            yield
        except RunnerError:
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._mark_unreachable(upstream)
            raise ServiceUnavailableError(
                f"The upstream runner for {model.model_id} is unreachable.",
                retry_after_s=self.settings.retry_after_s,
            ) from exc
        except httpx.TimeoutException as exc:
            raise InferenceError(
                f"The upstream runner for {model.model_id} did not answer within "
                f"{model.request_timeout_s:g} s."
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(
                f"The connection to the upstream runner for {model.model_id} failed: "
                f"{type(exc).__name__}.",
                retry_after_s=self.settings.retry_after_s,
            ) from exc


_DONE = object()


def _parse_event(model: ServedModel, line: str) -> Any:
    """One line of the upstream's event stream: a chunk, `_DONE`, or None for other lines."""
    if not line.startswith("data:"):
        return None
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return _DONE
    try:
        payload = json.loads(data)
        if isinstance(payload, dict) and "error" in payload:
            raise InferenceError(f"The upstream runner failed mid-stream: {payload['error']}")
        return LLMResponse.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        raise InferenceError(
            f"The upstream runner for {model.model_id} sent an invalid stream event."
        ) from exc


def _raise_for_status(model: ServedModel, response: httpx.Response, retry_after_s: int) -> None:
    """The error for an upstream's answer other than 200; `retry_after_s` for a 503 that
    names no Retry-After of its own (the adapter's setting)."""
    status = response.status_code
    if status == 200:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    msg = detail.get("msg") if isinstance(detail, dict) else None
    if status in PASSED_THROUGH and body is not None:
        raise UpstreamError(status, body, msg or f"Upstream runner answered HTTP {status}.")
    if status == 503:
        retry_after = response.headers.get("retry-after", "")
        raise ServiceUnavailableError(
            msg or f"The upstream runner for {model.model_id} is unavailable.",
            retry_after_s=int(retry_after) if retry_after.isdigit() else retry_after_s,
        )
    if status in (401, 403):
        raise InferenceError(
            f"The upstream runner for {model.model_id} refused the adapter's token "
            "(check runner.upstream_token)."
        )
    raise InferenceError(f"The upstream runner for {model.model_id} answered HTTP {status}.")
