"""Where a job's output files (and uploads) live: a local directory by default, or
S3-compatible storage named by ADAPTER_JOBS_OUTPUTS_URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from adapter.jobs.outputs.base import OutputStore
from adapter.jobs.outputs.local import LocalOutputStore
from contract.errors import ConfigError

__all__ = ["LocalOutputStore", "OutputStore", "open_outputs"]


def open_outputs(
    url: str | None,
    data_dir: Path,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    s3_public_endpoint_url: str | None = None,
    s3_presign: bool = True,
) -> OutputStore:
    """The store `url` names (ADAPTER_JOBS_OUTPUTS_URL):

    - unset or empty: the directory `<data_dir>/outputs`;
    - `file:///abs/dir` or a plain absolute path: that directory;
    - `s3://bucket` or `s3://bucket/prefix`: S3-compatible storage (boto3, imported only then).

    Nothing is created or contacted here: call the store's `open()` at start.
    """
    if not url:
        return LocalOutputStore(data_dir / "outputs")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        from adapter.jobs.outputs.s3 import S3OutputStore  # boto3 only where S3 is used

        return S3OutputStore(
            url,
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            public_endpoint_url=s3_public_endpoint_url,
            presign=s3_presign,
        )
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"ADAPTER_JOBS_OUTPUTS_URL: {url!r} is not file:///absolute/dir.")
        return LocalOutputStore(Path(unquote(parts.path)))
    if not parts.scheme and url.startswith("/"):
        return LocalOutputStore(Path(url))
    raise ConfigError(
        f"ADAPTER_JOBS_OUTPUTS_URL: {url!r} names no store this adapter has "
        "(an absolute directory, file:///dir, or s3://bucket/prefix)."
    )
