"""The servers of case (f): the adapter with a backend whose image is ready, and bare FastAPI
routes returning the same JSON, each run by uvicorn in its own process:

    python -m bench.overhead_app adapter --port 8001 --capacity 4 --size 512
    python -m bench.overhead_app bare --port 8002 --size 512        # JSONResponse per request
    python -m bench.overhead_app bare-bytes --port 8003 --size 512  # bytes made once
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel

from adapter.backends.base import ModelState
from bench.images import generated_like
from contract.aimodels import ServedModel, merge_entries, parse_entries
from contract.errors import BadRequestError
from contract.schemas import ImageResponse, Media, RequestModel
from functions.media import png_data_url

MODEL_ID = "bench/ready-image"
TOKEN = "bench-token"


def ready_response(size: int) -> ImageResponse:
    url = png_data_url(Image.fromarray(generated_like(size, size, seed=3)))
    return ImageResponse(images=[Media(url=url, seed=1, nsfw=False)])


class ReadyImageBackend:
    """A Backend (adapter/backends/base.py) whose every text-to-image job is already done:
    what is left to time is the adapter around it."""

    def __init__(self, response: ImageResponse) -> None:
        self.response = response

    def check(self, models: list[ServedModel]) -> None:
        return None

    async def start(self) -> None:
        return None

    def state(self, model: ServedModel) -> ModelState:
        return ModelState.READY

    async def run(
        self, model: ServedModel, request: RequestModel, hooks: object = None
    ) -> BaseModel:
        return self.response

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        raise BadRequestError("text-to-image does not stream")
        yield self.response  # type: ignore[unreachable]  # makes this an async generator

    async def close(self) -> None:
        return None


def adapter_app(size: int, capacity: int) -> FastAPI:
    from adapter.app import create_app
    from adapter.settings import Settings

    entry = {
        "pipeline": "text-to-image",
        "model_id": MODEL_ID,
        "warm": True,
        "capacity": capacity,
        "token": TOKEN,
    }
    models = merge_entries(parse_entries([entry]))
    settings = Settings(models_config=None, auth_token="", device="cpu")
    return create_app(settings, models, ReadyImageBackend(ready_response(size)))


def bare_app(size: int, preserialized: bool = False) -> FastAPI:
    """A FastAPI route that reads the JSON body and returns the payload: as FastAPI apps
    usually do (JSONResponse), or, the floor of any route, bytes serialized once at start."""
    app = FastAPI()
    body = ready_response(size).model_dump(mode="json")
    body_bytes = ready_response(size).model_dump_json().encode()

    @app.post("/text-to-image")
    async def text_to_image(request: Request) -> Response:
        await request.json()
        if preserialized:
            return Response(body_bytes, media_type="application/json")
        return JSONResponse(body)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "OK"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["adapter", "bare", "bare-bytes"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    app = (
        adapter_app(args.size, args.capacity)
        if args.kind == "adapter"
        else bare_app(args.size, preserialized=args.kind == "bare-bytes")
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
