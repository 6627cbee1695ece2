"""Large Blobs' stores: the S3 resource (boto3 signs and runs the small control calls in a thread;
httpx streams the bytes), the PostgreSQL schema and records. Metrics: metrics.py; settings: settings.py.

Checksums: every upload declares its SHA-256 up front and the URL it gets binds it
(x-amz-checksum-sha256 is a signed header), so the store itself refuses a body that does not match;
`complete` then reads the store's HEAD (size, checksum, type) and never the bytes. A multipart object
is recorded with its composite checksum, AWS's: SHA-256 over the parts' SHA-256 digests, "-<parts>".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic_settings import BaseSettings, SettingsConfigDict

from targets.resources import advisory_lock

MODULE = "large_blobs"
VARIANTS = ("proxy", "presigned", "multipart")
MIB = 1 << 20

def b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def composite_sha256(part_hex: list[str]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(h) for h in part_hex)).hexdigest() + f"-{len(part_hex)}"


class S3Settings(BaseSettings):
    """The object store's address and keys: the stack's (HARNESS_S3_*), not one of the module's settings."""

    model_config = SettingsConfigDict(env_prefix="HARNESS_S3_", extra="ignore")

    url: str = "http://127.0.0.1:19000"
    access_key: str = "harness"
    secret_key: str = "harness-secret"


class StoreError(RuntimeError):
    """The store refused or failed a call; `status` is what the target answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class S3:
    """A target resource: one bucket on an S3-compatible store (`targets/resources.py` shape)."""

    name, optional = "s3", False

    def __init__(self, url: str, access_key: str, secret_key: str, bucket: str) -> None:
        self.url, self.bucket = url, bucket
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=32,
                        request_checksum_calculation="when_required", response_checksum_validation="when_required",
                        retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30)
        self.client = boto3.client("s3", endpoint_url=url, aws_access_key_id=access_key,
                                   aws_secret_access_key=secret_key, region_name="us-east-1", config=config)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=2), limits=httpx.Limits(max_connections=64))

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except ClientError:
            await asyncio.to_thread(self.client.create_bucket, Bucket=self.bucket)

    async def check(self) -> None:
        await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)

    async def close(self) -> None:
        await self.http.aclose()

    # --- signing (no I/O) -------------------------------------------------------------------
    def put_url(self, key: str, size: int, content_type: str, sha256: str, expires_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": key, "ContentLength": size, "ContentType": content_type,
                  "ChecksumSHA256": b64(sha256)}
        return self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)

    def part_url(self, key: str, upload_id: str, number: int, size: int, sha256: str, expires_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number,
                  "ContentLength": size, "ChecksumSHA256": b64(sha256)}
        return self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_s)

    def get_url(self, key: str, expires_s: int) -> str:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=expires_s)

    # --- data path (streamed) -------------------------------------------------------------------
    async def stream_put(self, key: str, body, size: int, content_type: str, sha256: str) -> None:
        """PUT `body` (an async iterator of chunks) under `key`; the store checks its size and SHA-256."""
        headers = {"Content-Length": str(size), "Content-Type": content_type, "x-amz-checksum-sha256": b64(sha256)}
        response = await self.http.put(self.put_url(key, size, content_type, sha256, 60), content=body,
                                       headers=headers)
        if response.status_code != 200:
            code = response.text.partition("<Code>")[2].partition("</Code>")[0] or str(response.status_code)
            raise StoreError(422 if code in ("BadDigest", "IncompleteBody") else 502, f"the store refused: {code}")

    def stream_get(self, key: str):
        return self.http.stream("GET", self.get_url(key, 60))

    # --- control calls (small; boto3 in a thread) --------------------------------------------------
    async def call(self, operation: str, **params):
        try:
            return await asyncio.to_thread(getattr(self.client, operation), Bucket=self.bucket, **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchUpload", "NotFound"):
                return None
            raise StoreError(502, f"the store failed {operation}: {code}") from None

    async def parts(self, key: str, upload_id: str) -> dict[int, dict] | None:
        listed = await self.call("list_parts", Key=key, UploadId=upload_id, MaxParts=1000)
        return None if listed is None else {p["PartNumber"]: p for p in listed.get("Parts", [])}


SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_uploads (
  uid text PRIMARY KEY, key text NOT NULL UNIQUE, variant text NOT NULL, size bigint NOT NULL,
  sha256 text NOT NULL, content_type text NOT NULL, upload_id text, part_size bigint,
  part_sha256 text[], parts_signed int NOT NULL DEFAULT 0, resumed int NOT NULL DEFAULT 0,
  created_at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
  uid text PRIMARY KEY, key text NOT NULL UNIQUE, variant text NOT NULL, size bigint NOT NULL,
  sha256 text NOT NULL, content_type text NOT NULL, part_size bigint, recorded_at timestamptz DEFAULT now());
"""
UPLOAD_COLUMNS = "uid, key, variant, size, sha256, content_type, upload_id, part_size, part_sha256, created_at"
BLOB_COLUMNS = "uid, key, variant, size, sha256, content_type, part_size"


class Records:
    """The metadata in PostgreSQL: pending uploads, and the objects recorded once the store had them."""

    def __init__(self, pg) -> None:
        self.pg = pg

    async def setup(self) -> None:
        # several workers may start at once
        async with self.pg.pool.connection() as conn, advisory_lock(conn, MODULE, "schema"):
            await conn.execute(SCHEMA)

    async def _one(self, sql: str, params: tuple):
        async with self.pg.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def pending(self, upload: dict) -> None:
        await self._one(f"INSERT INTO blob_uploads ({UPLOAD_COLUMNS}) VALUES ({', '.join(['%s'] * 10)}) "
                        "RETURNING uid", tuple(upload[c.strip()] for c in UPLOAD_COLUMNS.split(",")))

    async def upload(self, uid: str, variant: str) -> dict | None:
        row = await self._one(f"SELECT {UPLOAD_COLUMNS}, parts_signed FROM blob_uploads WHERE uid = %s AND "
                              "variant = %s", (uid, variant))
        names = [c.strip() for c in UPLOAD_COLUMNS.split(",")] + ["parts_signed"]
        return None if row is None else dict(zip(names, row, strict=True))

    async def signed(self, uid: str, parts: int) -> None:
        await self._one("UPDATE blob_uploads SET parts_signed = parts_signed + %s, resumed = resumed + 1 "
                        "WHERE uid = %s RETURNING uid", (parts, uid))

    async def record(self, blob: dict) -> None:
        """Idempotent: a second complete of the same upload records nothing new."""
        await self._one(f"INSERT INTO blobs ({BLOB_COLUMNS}) VALUES ({', '.join(['%s'] * 7)}) "
                        "ON CONFLICT (uid) DO NOTHING RETURNING uid",
                        tuple(blob.get(c.strip()) for c in BLOB_COLUMNS.split(",")))

    async def blob(self, uid: str) -> dict | None:
        row = await self._one(f"SELECT {BLOB_COLUMNS} FROM blobs WHERE uid = %s", (uid,))
        return None if row is None else dict(zip([c.strip() for c in BLOB_COLUMNS.split(",")], row, strict=True))
