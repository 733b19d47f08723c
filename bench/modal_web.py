"""What one request costs the Modal web function (the adapter in front of the GPU classes):
CPU-seconds and peak memory, to size `ADAPTER_MODAL_WEB_CPU` and `ADAPTER_MODAL_WEB_MEMORY_MB`.

    python -m bench.modal_web                      # 1024x1024, 40 requests, bursts of 32
    python -m bench.modal_web --size 512 --requests 20 --burst 8 --hold 1
    python -m bench.modal_web --kinds segment-anything-2 --requests 4 --burst 4

The adapter runs under uvicorn in its own process, with a backend that does the web side of a
Modal call and nothing else: the request crosses Modal's serializer (what `.spawn` sends), the
answer, a PNG data URL the GPU class made, is deserialized (what `.get` receives), and the
adapter validates, checks and JSON-encodes as it does on Modal. Three requests: text-to-image
(JSON in, one PNG out), image-to-image (a PNG uploaded as multipart, one PNG out) and
segment-anything-2 (a PNG uploaded with a point, three masks answered with their logits, as the
runner writes them: `str()` of float32 lists, ~63 MB of text at 1024x1024; run it with a small
`--burst`, each request in flight holds several copies). The
server's CPU time and peak resident memory are read from /proc (Linux), so they include the
HTTP parsing and sockets. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
KINDS = ("text-to-image", "image-to-image", "segment-anything-2")
UPLOADS = ("image-to-image", "segment-anything-2")
SAM2_MASKS = 3  # multimask_output: the runner's default
SAM2_LOW_RES = 256  # SAM 2's low-resolution logits, whatever the image's size


def _png(size: int, seed: int) -> bytes:
    from bench.images import generated_like

    buffer = io.BytesIO()
    Image.fromarray(generated_like(size, size, seed=seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def _masks_answer(size: int) -> BaseModel:
    """SAM 2's answer with `return_logits` as the GPU class writes it (functions/
    segment_anything_2.py, `masks_response_strings`): masks as logits at the image's size and
    the low-resolution logits, float32 values of a model's spread (so each prints at its
    float repr's usual length)."""
    import numpy as np

    from contract.schemas import MasksResponse
    from functions.segment_anything_2 import Segmentation, masks_response_strings

    rng = np.random.default_rng(7)
    shape = (SAM2_MASKS, size, size)
    low = (SAM2_MASKS, SAM2_LOW_RES, SAM2_LOW_RES)
    result = Segmentation(
        masks=rng.normal(0.0, 8.0, shape).astype(np.float32),
        scores=np.array([0.91, 0.85, 0.42], dtype=np.float32)[:SAM2_MASKS],
        logits=rng.normal(0.0, 8.0, low).clip(-32, 32).astype(np.float32),
    )
    masks, scores, logits = masks_response_strings(result)
    return MasksResponse(masks=masks, scores=scores, logits=logits)


def web_app(size: int, capacity: int, hold_s: float, kinds: tuple[str, ...] = KINDS) -> Any:
    """The adapter with a backend standing for the Modal call's web half (see the docstring)."""
    from modal._serialization import deserialize, serialize

    from adapter.app import create_app
    from adapter.backends.base import ModelState
    from adapter.settings import Settings
    from contract.aimodels import ServedModel, merge_entries, parse_entries
    from contract.schemas import ImageResponse, Media, RequestModel
    from functions.media import png_data_url

    image = Image.open(io.BytesIO(_png(size, seed=3)))
    # Made once, in "the GPU class": what comes back over the wire for every request.
    png_answer = serialize(
        ImageResponse(images=[Media(url=png_data_url(image), seed=1, nsfw=False)])
    )
    answers = {kind: png_answer for kind in kinds if kind != "segment-anything-2"}
    if "segment-anything-2" in kinds:
        answers["segment-anything-2"] = serialize(_masks_answer(size))

    class ModalWireBackend:
        def check(self, models: list[ServedModel]) -> None:
            return None

        async def start(self) -> None:
            return None

        def state(self, model: ServedModel) -> ModelState:
            return ModelState.READY

        async def run(
            self, model: ServedModel, request: RequestModel, hooks: object = None
        ) -> BaseModel:
            serialize((request,))  # the spawn's arguments
            await asyncio.sleep(hold_s)  # the GPU at work: requests in flight hold their memory
            result = deserialize(answers[model.pipeline.value], None)  # the call's result
            assert isinstance(result, BaseModel)
            return result

        def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[Any]:
            raise NotImplementedError("nothing streams here")

        async def close(self) -> None:
            return None

    entries = [
        {"pipeline": kind, "model_id": f"bench/{kind}", "warm": True, "capacity": capacity}
        for kind in kinds
    ]
    settings = Settings(models_config=None, auth_token=TOKEN, device="cpu")
    return create_app(settings, merge_entries(parse_entries(entries)), ModalWireBackend())


def _proc(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and resident / peak resident memory (MiB) of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "hwm_mib": int(status["VmHWM"].split()[0]) / 1024,
    }


def _request(client: httpx.AsyncClient, kind: str, upload: bytes) -> Any:
    if kind == "text-to-image":
        body = {"model_id": f"bench/{kind}", "prompt": "a lighthouse at dusk"}
        return client.post(f"/{kind}", json=body)
    if kind == "segment-anything-2":
        data = {
            "model_id": f"bench/{kind}",
            "point_coords": "[[20, 12]]",
            "point_labels": "[1]",
            "return_logits": "true",
        }
    else:
        data = {"model_id": f"bench/{kind}", "prompt": "make it blue"}
    return client.post(f"/{kind}", data=data, files={"image": ("in.png", upload, "image/png")})


async def _measure(url: str, pid: int, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    upload = _png(args.size, seed=5)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        for _ in range(3):  # warm-up: imports, first-call caches
            (await _request(client, kind, upload)).raise_for_status()
        idle = _proc(pid)
        for _ in range(args.requests):
            (await _request(client, kind, upload)).raise_for_status()
        sequential = _proc(pid)
        burst = await asyncio.gather(*(_request(client, kind, upload) for _ in range(args.burst)))
        for response in burst:
            response.raise_for_status()
        after = _proc(pid)
    return {
        "kind": kind,
        "upload_bytes": len(upload) if kind in UPLOADS else 0,
        "response_bytes": len(burst[0].content),
        # Waiting costs no CPU: the sequential requests' CPU time is the requests' own.
        "cpu_s_per_request": round((sequential["cpu_s"] - idle["cpu_s"]) / args.requests, 4),
        "idle_rss_mib": round(idle["rss_mib"], 1),
        "burst": args.burst,
        "peak_rss_mib": round(after["hwm_mib"], 1),
        "peak_mib_per_request": round((after["hwm_mib"] - idle["rss_mib"]) / args.burst, 2),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    command = [sys.executable, "-m", "bench.modal_web", "--serve", str(port)]
    command += ["--size", str(args.size), "--burst", str(args.burst), "--hold", str(args.hold)]
    command += ["--kinds", kind]
    server = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                error = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"the adapter did not start: {error[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        return asyncio.run(_measure(url, server.pid, kind, args))
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stderr is not None:
            server.stderr.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument(
        "--hold", type=float, default=2.0, help="seconds each call 'runs on the GPU'"
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"requests to measure, of {','.join(KINDS)}"
    )
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = tuple(kind for kind in args.kinds.split(",") if kind)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"--kinds: {sorted(unknown) or 'none'} not of {','.join(KINDS)}")
    if args.serve:
        import uvicorn

        app = web_app(args.size, capacity=args.burst, hold_s=args.hold, kinds=kinds)
        uvicorn.run(app, host="127.0.0.1", port=args.serve, log_level="warning", access_log=False)
        return
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "size": args.size,
        "results": [_serve(kind, args) for kind in kinds],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
