"""The jobs load test's client: N submits through `POST /v1/jobs` from a bounded number of
concurrent httpx clients, each submit timed, then polling the list (status filters, cursor
pages) until every job has ended, and the jobs' final rows read back the same way."""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

PIPELINES = ("mix", "text-to-image", "image-to-image", "llm")
TERMINAL = ("succeeded", "failed", "canceled")
PAGE = 100  # the list's largest page
# Demo models (adapter/settings.py demo_entries) and the cheapest request of each.
_T2I = {"pipeline": "text-to-image", "model_id": "demo/tiny-sd"}
_I2I = {"pipeline": "image-to-image", "model_id": "demo/tiny-sd-img2img"}
_LLM = {"pipeline": "llm", "model_id": "demo/tiny-llm"}


def pipeline_of(choice: str, index: int) -> str:
    """The pipeline of the index-th job: in the mix, 8 of 10 text-to-image (the cheapest
    diffusion job), 1 image-to-image (a multipart upload), 1 llm."""
    if choice != "mix":
        return choice
    return {8: "image-to-image", 9: "llm"}.get(index % 10, "text-to-image")


def _png(size: int) -> bytes:
    from PIL import Image

    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Workload:
    choice: str
    run_id: str
    size: int = 64
    _image: bytes = field(default=b"", repr=False)

    def request(self, index: int) -> dict[str, Any]:
        """httpx.post keyword arguments of the index-th submit."""
        pipeline = pipeline_of(self.choice, index)
        metadata = {"bench": self.run_id, "index": index}
        if pipeline == "text-to-image":
            params = {"prompt": f"load test {index}", "width": self.size, "height": self.size}
            params |= {"num_inference_steps": 1, "seed": index}
            return {"json": _T2I | {"params": params, "metadata": metadata}}
        if pipeline == "llm":
            params = {"messages": [{"role": "user", "content": f"hi {index}"}], "max_tokens": 4}
            return {"json": _LLM | {"params": params, "metadata": metadata}}
        if not self._image:
            self._image = _png(self.size)
        # strength 0.5 of 2 steps: one denoising step, as the text-to-image jobs do.
        params = {"prompt": f"load test {index}", "strength": 0.5, "num_inference_steps": 2}
        params["seed"] = index
        data = _I2I | {"params": json.dumps(params), "metadata": json.dumps(metadata)}
        return {"data": data, "files": {"image": ("in.png", self._image, "image/png")}}


@dataclass
class SubmitResult:
    ids: list[str]
    latencies_s: list[float]
    first_start: datetime  # wall clock (UTC), to compare with the server's timestamps
    wall_s: float
    rejected: int  # 429s (queue full), each retried after its Retry-After
    retried_errors: int  # transport errors, retried with the same Idempotency-Key
    errors: list[str]  # submits that never got a 202


async def submit_all(
    client: httpx.AsyncClient,
    workload: Workload,
    jobs: int,
    concurrency: int,
    attempts: int = 5,
) -> SubmitResult:
    """`jobs` submits by `concurrency` workers, each taking the next index until none is left."""
    ids: list[str | None] = [None] * jobs
    latencies: list[float] = []
    errors: list[str] = []
    counts = {"rejected": 0, "retried": 0}
    indexes = iter(range(jobs))

    async def submit(index: int) -> None:
        headers = {"Idempotency-Key": f"{workload.run_id}-{index}"}
        last = f"job {index}: no attempt"
        for _ in range(attempts):
            started = time.perf_counter()
            try:
                response = await client.post("/v1/jobs", headers=headers, **workload.request(index))
            except httpx.TransportError as exc:
                counts["retried"] += 1
                last = f"job {index}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code == 202:
                latencies.append(time.perf_counter() - started)
                ids[index] = str(response.json()["id"])
                return
            last = f"job {index}: {response.status_code} {response.text[:300]}"
            if response.status_code != 429:
                break
            counts["rejected"] += 1
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        errors.append(last)

    async def worker() -> None:
        for index in indexes:  # one shared iterator: each index is taken once
            await submit(index)

    first_start = datetime.now(UTC)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return SubmitResult(
        ids=[job_id for job_id in ids if job_id is not None],
        latencies_s=latencies,
        first_start=first_start,
        wall_s=time.perf_counter() - started,
        rejected=counts["rejected"],
        retried_errors=counts["retried"],
        errors=errors,
    )


async def list_all(client: httpx.AsyncClient, **filters: str) -> tuple[list[dict[str, Any]], int]:
    """Every job the list shows under `filters`, page by page (newest first); and the pages."""
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = filters | {"limit": str(PAGE)} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v1/jobs", params=params)
        response.raise_for_status()
        body = response.json()
        pages += 1
        jobs += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return jobs, pages


@dataclass
class PollResult:
    ended: bool  # every job read back in a terminal state
    observed_s: float  # from the poll's start to the read-back that found every job ended
    rounds: int
    pages: int
    final: dict[str, dict[str, Any]]  # job id -> its JSON, as last read


async def queued_count(client: httpx.AsyncClient, created_after: str) -> int:
    """Jobs queued (created since `created_after`): one page of the newest, whose queue
    position is the number queued ahead of it (the list's pages of queued jobs cost a position
    each; this costs one)."""
    params = {"status": "queued", "created_after": created_after, "limit": "1"}
    response = await client.get("/v1/jobs", params=params)
    response.raise_for_status()
    data = response.json()["data"]
    return int(data[0]["queue_position"]) + 1 if data else 0


async def read_back(
    client: httpx.AsyncClient, ours: set[str], created_after: str
) -> tuple[dict[str, dict[str, Any]], int]:
    """Every job of ours as the list shows it (those missing from it read alone); pages read."""
    everything, pages = await list_all(client, created_after=created_after)
    final = {job["id"]: job for job in everything if job["id"] in ours}
    for job_id in ours - set(final):
        response = await client.get(f"/v1/jobs/{job_id}")
        final[job_id] = response.json() if response.status_code == 200 else {"status": "missing"}
    return final, pages


async def poll_until_ended(
    client: httpx.AsyncClient,
    ids: list[str],
    since: datetime,
    timeout_s: float,
    interval_s: float,
    on_round: Any = None,
) -> PollResult:
    """Rounds of counting the queued jobs and listing the running ones until neither is left;
    then every job is read back, and polling goes on unless each one has ended (a job given
    back to the queue between the two reads of a round is caught there)."""
    ours = set(ids)
    started = time.monotonic()
    deadline = started + timeout_s
    rounds = pages = 0
    created_after = since.isoformat()
    final: dict[str, dict[str, Any]] = {}
    while True:
        rounds += 1
        left = {"queued": await queued_count(client, created_after)}
        running, read = await list_all(client, status="running", created_after=created_after)
        left["running"] = sum(1 for job in running if job["id"] in ours)
        pages += read + 1
        if on_round is not None:
            on_round(rounds, left, time.monotonic() - started)
        if not any(left.values()):
            final, read = await read_back(client, ours, created_after)
            pages += read
            if all(job.get("status") in TERMINAL for job in final.values()):
                return PollResult(True, time.monotonic() - started, rounds, pages, final)
        if time.monotonic() + interval_s > deadline:
            break
        await asyncio.sleep(interval_s)
    final, read = await read_back(client, ours, created_after)
    ended = all(job.get("status") in TERMINAL for job in final.values())
    return PollResult(ended, time.monotonic() - started, rounds, pages + read, final)
