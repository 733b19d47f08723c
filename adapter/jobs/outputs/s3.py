"""Outputs in S3-compatible storage (AWS S3, MinIO, Ceph, R2...) named by `s3://bucket/prefix`.

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
an instance role); the endpoint and region from settings. The store creates nothing: the bucket
must exist, and `open` says so naming the setting when it does not. boto3 blocks, so every call
runs in a thread (its clients are thread-safe). A single PUT stores each object, which S3 makes
visible whole or not at all.

Links: `presigned_url` signs a GET locally (SigV4, no request). The signature covers the host,
so where browsers reach the store by another address than the adapter does (a container
network), `public_endpoint_url` signs for that address instead.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from adapter.jobs.outputs.base import check_expiry, check_key, check_prefix, check_range
from contract.errors import BadRequestError, ConfigError, ServiceUnavailableError

RETRY_AFTER_S = 5
PAGE_SIZE = 1000  # ListObjectsV2 answers at most 1000 keys a page, DeleteObjects takes 1000
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
URL_SETTING = "ADAPTER_JOBS_OUTPUTS_URL"


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/some/prefix`; the prefix without its slashes."""
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if parts.scheme != "s3" or not bucket or parts.query or parts.fragment:
        raise ConfigError(f"{URL_SETTING}: {url!r} is not s3://bucket or s3://bucket/prefix.")
    try:
        if prefix:
            check_prefix(prefix)
    except BadRequestError as error:
        raise ConfigError(f"{URL_SETTING}: the prefix of {url!r}: {error.msg}") from error
    return bucket, prefix


class S3OutputStore:
    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_endpoint_url: str | None = None,
        presign: bool = True,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url = endpoint_url or None
        self.presign = presign
        self.page_size = PAGE_SIZE  # smaller in the tests, to make pagination happen
        session = boto3.session.Session()  # sessions are not thread-safe; their clients are
        self._client = self._make_client(
            session, self.endpoint_url, region, connect_timeout_s, read_timeout_s
        )
        self._signer = (
            self._make_client(session, public_endpoint_url, region, connect_timeout_s, 1.0)
            if public_endpoint_url
            else self._client
        )

    @staticmethod
    def _make_client(
        session: Any, endpoint: str | None, region: str | None, connect_s: float, read_s: float
    ) -> Any:
        config = Config(
            signature_version="s3v4",
            connect_timeout=connect_s,
            read_timeout=read_s,
            retries={"max_attempts": 3, "mode": "standard"},
            # S3-compatible servers are mostly reached by path (http://host:9000/bucket/key);
            # AWS itself by virtual host.
            s3={"addressing_style": "path" if endpoint else "virtual"},
        )
        return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except NoCredentialsError as error:
            raise ConfigError(
                f"{URL_SETTING}: no credentials for {self.url} (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or another source of boto3's chain)"
            ) from error
        except ClientError as error:
            code = _code(error)
            what = "does not exist" if code in NOT_FOUND else f"cannot be used ({code})"
            raise ConfigError(
                f"{URL_SETTING}: the bucket {self.bucket!r} {what} at "
                f"{self.endpoint_url or 'AWS S3'}; the store creates no bucket"
            ) from error
        except BotoCoreError as error:
            raise ConfigError(
                f"ADAPTER_JOBS_S3_ENDPOINT_URL: cannot reach {self.endpoint_url or 'AWS S3'}: "
                f"{error}"
            ) from error

    async def close(self) -> None:
        self._client.close()
        if self._signer is not self._client:
            self._signer.close()

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        name = self._key(key)
        check_expiry(expires_s)
        if not self.presign:
            return None
        url: str = self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": name}, ExpiresIn=expires_s
        )
        return url

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            key,
            "put_object",
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
        )

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key, None)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        # S3 ignores a Range it cannot parse and sends the whole object: check it here.
        check_range(start, end)
        return await asyncio.to_thread(self._read, key, f"bytes={start}-{end}")

    async def size(self, key: str) -> int:
        head = await self._call(key, "head_object", Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])

    async def content_type(self, key: str) -> str:
        head = await self._call(key, "head_object", Bucket=self.bucket, Key=self._key(key))
        return str(head.get("ContentType") or "application/octet-stream")

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        return await asyncio.to_thread(self._delete_prefix, full)

    # --- in a thread ------------------------------------------------------------------------

    async def _call(self, key: str, method: str, **params: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, method), **params)
        except ClientError as error:
            if _code(error) in NOT_FOUND:
                raise KeyError(key) from None
            raise _unavailable(key, error) from error
        except BotoCoreError as error:
            raise _unavailable(key, error) from error

    def _read(self, key: str, byte_range: str | None) -> bytes:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if byte_range is not None:
            params["Range"] = byte_range
        try:
            body = self._client.get_object(**params)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data
        except ClientError as error:
            code = _code(error)
            if code in NOT_FOUND:
                raise KeyError(key) from None
            if code == "InvalidRange":
                raise ValueError(f"{byte_range} starts past the end of {key}.") from None
            raise _unavailable(key, error) from error
        except BotoCoreError as error:
            raise _unavailable(key, error) from error

    def _delete_prefix(self, full_prefix: str) -> int:
        deleted = 0
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=full_prefix,
                PaginationConfig={"PageSize": self.page_size},
            )
            batch: list[dict[str, str]] = []
            for page in pages:
                batch.extend({"Key": item["Key"]} for item in page.get("Contents", ()))
                while len(batch) >= self.page_size:
                    deleted += self._delete_batch(batch[: self.page_size])
                    batch = batch[self.page_size :]
            if batch:
                deleted += self._delete_batch(batch)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(full_prefix, error) from error
        return deleted

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        response = self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
        )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise ServiceUnavailableError(
                f"The output store could not delete {len(errors)} objects, "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                RETRY_AFTER_S,
            )
        return len(batch)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _unavailable(key: str, error: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(f"The output store failed on {key}: {error}", RETRY_AFTER_S)
