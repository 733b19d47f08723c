"""The router that serves the jobs page at /ui: three static files shipped as package data.

No build step and nothing from another origin: the page is an HTML file, a script and a style
sheet, read once from the installed package (`importlib.resources`, so a wheel or a zip import
serves them as well as a source tree). The index names each asset with a hash of its bytes
(`app.js?v=<hash>`), so an asset asked for with its current hash can be cached for a year and a
new release is fetched at once; the index itself is revalidated on every load (ETag, 304).
Every answer carries a strict Content-Security-Policy: scripts, styles and connections to this
origin only, media from this origin or the page's own blob: URLs, no frames, no forms elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

# The files of the page and their types; nothing else under /ui is served.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
INDEX = "index.html"
# Where the index names an asset: the placeholder is replaced by the asset's hash.
VERSION_MARK = "{{v:%s}}"
# An asset asked for with its current hash never changes; anything else is revalidated.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Not worth compressing below this size (the saving is smaller than the headers).
GZIP_MIN_BYTES = 1024


def content_security_policy(media_origins: Iterable[str] = ()) -> str:
    """The page's policy. `media_origins` are where outputs may be loaded from besides this
    origin (an S3-compatible store's presigned links), e.g. "https://s3.example.com"."""
    media = " ".join(("'self'", "blob:", *media_origins))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} data:",
            f"media-src {media}",
            f"connect-src 'self' {' '.join(media_origins)}".rstrip(),
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> StaticFile:
        digest = hashlib.sha256(body).hexdigest()
        gzipped = gzip.compress(body, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        return cls(body, gzipped, content_type, f'"{digest[:32]}"')

    @property
    def version(self) -> str:
        return self.etag.strip('"')[:12]


def load_page() -> dict[str, StaticFile]:
    """The page's files from the installed package, the index naming each asset's hash."""
    folder = resources.files(__package__)
    files = {
        name: StaticFile.of(folder.joinpath(name).read_bytes(), content_type)
        for name, content_type in ASSETS.items()
    }
    index = folder.joinpath(INDEX).read_text(encoding="utf-8")
    for name, asset in files.items():
        index = index.replace(VERSION_MARK % name, asset.version)
    files[INDEX] = StaticFile.of(index.encode("utf-8"), "text/html; charset=utf-8")
    return files


def build_ui_router(media_origins: Iterable[str] = ()) -> APIRouter:
    """GET/HEAD /ui (a redirect to /ui/, so the page's relative links work under any root
    path), /ui/ (the page) and /ui/<asset>."""
    files = load_page()
    policy = content_security_policy(tuple(media_origins))
    router = APIRouter(include_in_schema=False)

    def answer(request: Request, name: str, cache: str) -> Response:
        file = files[name]
        headers = {
            "Cache-Control": cache,
            "ETag": file.etag,
            "Vary": "Accept-Encoding",
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
        if file.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = file.body
        if file.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", "")):
            body = file.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=file.content_type, headers=headers)

    @router.api_route("/ui", methods=["GET", "HEAD"])
    async def ui_root() -> Response:
        # Relative, so it stays under the root path the app is mounted at.
        return RedirectResponse("ui/", status_code=308)

    @router.api_route("/ui/", methods=["GET", "HEAD"])
    async def ui_index(request: Request) -> Response:
        return answer(request, INDEX, REVALIDATE)

    @router.api_route("/ui/{name}", methods=["GET", "HEAD"])
    async def ui_asset(request: Request, name: str) -> Response:
        if name not in ASSETS:
            return Response(
                "Not found: the page's files are index.html, app.js and style.css.\n",
                status_code=404,
                media_type="text/plain; charset=utf-8",
                headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"},
            )
        current = request.query_params.get("v") == files[name].version
        return answer(request, name, IMMUTABLE if current else REVALIDATE)

    return router


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
