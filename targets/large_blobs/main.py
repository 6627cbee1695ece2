"""Large Blobs: files stored in an S3-compatible store, their metadata in PostgreSQL.

A little over 300 lines: the three upload paths and the two download paths are one API, kept together.

Variants, each under its own route prefix:
  proxy      the client uploads the bytes to the target, which streams them to the store (chunk by
             chunk, never a whole file in memory) and records the object; downloads stream back through it
  presigned  the target signs a PUT URL for one key, a short expiry, the exact size, type and SHA-256;
             the client uploads straight to the store, then `complete` checks the store's HEAD and records
  multipart  pre-signed part URLs (each bound to its part's SHA-256), uploaded in parallel; `resume`
             signs only the parts the store lacks; `complete` checks every part, then records
  Downloads of presigned and multipart answer 307 to a pre-signed GET; any variant serves any object.

Keys are `<variant>/<tag>/<uid>`; the client's tag names its run and phase, so the load side's
invariants find one phase's objects. Store and database failures answer 503 (502 when the store
refuses a call it should accept); a bad body 422; nothing is recorded unless the store has the object.
Settings: HARNESS_LARGE_BLOBS_* (settings.py, the spec's class), the store's HARNESS_S3_URL/_ACCESS_KEY/
_SECRET_KEY (store.S3Settings), the common ones. Metrics: metrics.py.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Annotated

import httpx
from fastapi import Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from targets.common import TargetSettings, create_app, error_responses
from targets.large_blobs import metrics, store
from targets.large_blobs.settings import Settings
from targets.large_blobs.store import MIB, MODULE, S3, VARIANTS, Records, S3Settings, StoreError
from targets.resources import Postgres

SHA, TAG, TYPE = r"^[0-9a-f]{64}$", r"^[A-Za-z0-9._-]{1,80}$", r"^[a-z]+/[a-z0-9.+-]{1,64}$"
Uid = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
Sha256 = Annotated[str, Field(pattern=SHA, description="hex SHA-256 of the body")]
Tag = Annotated[str, Field(pattern=TAG, description="groups a run's objects")]
ContentType = Annotated[str, Field(pattern=TYPE)]


class NewUpload(BaseModel):
    size: int = Field(ge=1)
    sha256: Sha256
    content_type: ContentType = "application/octet-stream"
    tag: Tag = "default"
    expires_s: int | None = Field(default=None, ge=1, le=3600, description="default: the target's setting")


class NewMultipart(NewUpload):
    part_sha256: list[Sha256] = Field(min_length=1, max_length=1000, description="each part's SHA-256, in order")


class StreamCounter:
    """ASGI wrapper: counts request and response body bytes of every variant's routes."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        variant = scope.get("path", "/")[1:].partition("/")[0] if scope["type"] == "http" else ""
        if variant not in VARIANTS:
            return await self.app(scope, receive, send)
        received = metrics.APP_BYTES.labels(MODULE, variant, "received")
        sent = metrics.APP_BYTES.labels(MODULE, variant, "sent")

        async def counted_receive():
            message = await receive()
            received.inc(len(message.get("body", b"")))
            return message

        async def counted_send(message) -> None:
            sent.inc(len(message.get("body", b"")) if message["type"] == "http.response.body" else 0)
            await send(message)

        await self.app(scope, counted_receive, counted_send)


class Blobs:
    """The handlers of one variant."""

    def __init__(self, variant: str, s3: S3, records: Records, settings: Settings) -> None:
        self.variant, self.s3, self.records, self.settings = variant, s3, records, settings
        self.max_bytes, self.part_size = settings.max_mib * MIB, settings.part_mib * MIB

    def _checked_size(self, size: int) -> int:
        if size > self.max_bytes:
            raise HTTPException(413, f"objects up to {self.max_bytes} bytes, got {size}")
        return size

    def _recorded(self, blob: dict, status: int = 201) -> JSONResponse:
        return JSONResponse({k: blob[k] for k in ("uid", "key", "size", "sha256")}, status_code=status)

    async def _record(self, blob: dict, started: float) -> JSONResponse:
        await self.records.record(blob)
        metrics.RECORDED.labels(MODULE, self.variant).inc()
        metrics.RECORDED_MIB.labels(MODULE, self.variant).inc(blob["size"] / MIB)
        metrics.UPLOAD_SECONDS.labels(MODULE, self.variant).observe(time.time() - started)
        return self._recorded(blob)

    def _refuse(self, reason: str, message: str) -> HTTPException:
        metrics.REFUSED.labels(MODULE, self.variant, reason).inc()
        return HTTPException(409, message)

    # --- proxy ------------------------------------------------------------------------------
    async def proxy_upload(self, request: Request, sha256: Annotated[str, Query(pattern=SHA)],
                           tag: Annotated[str, Query(pattern=TAG)] = "default") -> JSONResponse:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) < 1:
            raise HTTPException(411, "send the body with a Content-Length (no chunked uploads)")
        size, started = self._checked_size(int(length)), time.time()
        content_type = request.headers.get("content-type", "application/octet-stream").partition(";")[0]
        if re.fullmatch(TYPE, content_type) is None:
            raise HTTPException(422, f"bad Content-Type {content_type!r}")
        uid = uuid.uuid4().hex
        key = f"{self.variant}/{tag}/{uid}"
        try:
            await self.s3.stream_put(key, request.stream(), size, content_type, sha256)
        except ClientDisconnect:
            raise HTTPException(400, "the client went away before the whole body arrived") from None
        blob = {"uid": uid, "key": key, "variant": self.variant, "size": size, "sha256": sha256,
                "content_type": content_type}
        return await self._record(blob, started)

    # --- presigned --------------------------------------------------------------------------
    async def presign(self, new: NewUpload) -> JSONResponse:
        size, uid = self._checked_size(new.size), uuid.uuid4().hex
        key, expires = f"{self.variant}/{new.tag}/{uid}", new.expires_s or self.settings.url_expiry_s
        await self.records.pending({"uid": uid, "key": key, "variant": self.variant, "size": size,
                                    "sha256": new.sha256, "content_type": new.content_type, "upload_id": None,
                                    "part_size": None, "part_sha256": None, "created_at": time.time()})
        url = self.s3.put_url(key, size, new.content_type, new.sha256, expires)
        headers = {"Content-Type": new.content_type, "x-amz-checksum-sha256": store.b64(new.sha256)}
        return JSONResponse({"uid": uid, "key": key, "url": url, "method": "PUT", "headers": headers,
                             "expires_s": expires}, status_code=201)

    async def _pending(self, uid: str) -> dict:
        upload = await self.records.upload(uid, self.variant)
        if upload is None:
            raise HTTPException(404, f"no {self.variant} upload {uid}")
        return upload

    async def complete(self, uid: Uid) -> JSONResponse:
        upload = await self._pending(uid)
        recorded = await self.records.blob(uid)
        if recorded is not None:
            return self._recorded(recorded, 200)
        head = await self.s3.call("head_object", Key=upload["key"], ChecksumMode="ENABLED")
        if head is None:
            raise self._refuse("missing", "the store has no object for this upload")
        problems = [what for what, ok in (
            ("size", head["ContentLength"] == upload["size"]),
            ("sha256", head.get("ChecksumSHA256") == store.b64(upload["sha256"])),
            ("content type", head.get("ContentType") == upload["content_type"])) if not ok]
        if problems:
            await self.s3.call("delete_object", Key=upload["key"])
            raise self._refuse("mismatch", f"the stored object does not match the upload: {', '.join(problems)}")
        return await self._record(upload, upload["created_at"])

    # --- multipart --------------------------------------------------------------------------
    async def multipart_start(self, new: NewMultipart) -> JSONResponse:
        size, uid = self._checked_size(new.size), uuid.uuid4().hex
        count = math.ceil(size / self.part_size)
        if len(new.part_sha256) != count:
            raise HTTPException(422, f"{size} bytes in {self.part_size}-byte parts is {count} parts; "
                                f"got {len(new.part_sha256)} part checksums")
        key = f"{self.variant}/{new.tag}/{uid}"
        created = await self.s3.call("create_multipart_upload", Key=key, ContentType=new.content_type,
                                     ChecksumAlgorithm="SHA256")
        upload = {"uid": uid, "key": key, "variant": self.variant, "size": size, "sha256": new.sha256,
                  "content_type": new.content_type, "upload_id": created["UploadId"], "part_size": self.part_size,
                  "part_sha256": new.part_sha256, "created_at": time.time()}
        await self.records.pending(upload)
        await self.records.signed(uid, 0)
        return JSONResponse({"uid": uid, "key": key, "part_size": self.part_size,
                             "parts": await self._sign(upload, range(1, count + 1), new.expires_s)}, status_code=201)

    def _part_size(self, upload: dict, number: int) -> int:
        return min(upload["part_size"], upload["size"] - (number - 1) * upload["part_size"])

    async def _sign(self, upload: dict, numbers, expires_s: int | None) -> list[dict]:
        numbers = list(numbers)
        await self.records.signed(upload["uid"], len(numbers))
        expires = expires_s or self.settings.url_expiry_s
        return [{"number": n, "size": self._part_size(upload, n), "url": self.s3.part_url(
            upload["key"], upload["upload_id"], n, self._part_size(upload, n), upload["part_sha256"][n - 1], expires),
            "headers": {"x-amz-checksum-sha256": store.b64(upload["part_sha256"][n - 1])}} for n in numbers]

    async def _missing(self, upload: dict) -> list[int] | None:
        present = await self.s3.parts(upload["key"], upload["upload_id"])
        if present is None:
            return None
        count = len(upload["part_sha256"])
        return [n for n in range(1, count + 1)
                if n not in present or present[n]["Size"] != self._part_size(upload, n)]

    async def resume(self, uid: Uid) -> JSONResponse:
        """Sign only the parts the store lacks: an interrupted upload re-sends nothing it already sent."""
        upload = await self._pending(uid)
        if await self.records.blob(uid) is not None:
            return JSONResponse({"uid": uid, "parts": [], "completed": True})
        missing = await self._missing(upload)
        if missing is None:
            raise HTTPException(409, "the store no longer knows this upload (aborted or expired)")
        return JSONResponse({"uid": uid, "parts": await self._sign(upload, missing, None), "completed": False})

    async def multipart_complete(self, uid: Uid) -> JSONResponse:
        upload = await self._pending(uid)
        recorded = await self.records.blob(uid)
        if recorded is not None:
            return self._recorded(recorded, 200)
        present = await self.s3.parts(upload["key"], upload["upload_id"])
        missing = None if present is None else await self._missing(upload)
        if present is None or missing:
            raise self._refuse("missing", f"parts missing in the store: {missing or 'the whole upload'}")
        sums = upload["part_sha256"]
        parts = [{"PartNumber": n, "ETag": present[n]["ETag"], "ChecksumSHA256": store.b64(sums[n - 1])}
                 for n in sorted(present) if n <= len(sums)]
        await self.s3.call("complete_multipart_upload", Key=upload["key"], UploadId=upload["upload_id"],
                           MultipartUpload={"Parts": parts})
        head = await self.s3.call("head_object", Key=upload["key"])
        if head is None or head["ContentLength"] != upload["size"]:
            raise self._refuse("mismatch", "the completed object does not have the declared size")
        blob = {**upload, "sha256": store.composite_sha256(upload["part_sha256"])}
        return await self._record(blob, upload["created_at"])

    # --- downloads --------------------------------------------------------------------------
    async def download(self, uid: Uid) -> Response:
        blob = await self.records.blob(uid)
        if blob is None:
            raise HTTPException(404, f"no object {uid}")
        metrics.DOWNLOADS.labels(MODULE, self.variant).inc()
        if self.variant != "proxy":
            return RedirectResponse(self.s3.get_url(blob["key"], self.settings.url_expiry_s), 307)
        stream = self.s3.stream_get(blob["key"])
        response = await stream.__aenter__()
        if response.status_code != 200:
            await stream.__aexit__(None, None, None)
            raise StoreError(502, f"the store answered {response.status_code} for a recorded object")

        async def body():
            try:
                async for chunk in response.aiter_raw(256 * 1024):
                    yield chunk
            finally:
                await stream.__aexit__(None, None, None)

        return StreamingResponse(body(), media_type=blob["content_type"],
                                 headers={"Content-Length": str(blob["size"])})

    def routes(self) -> list[APIRoute]:
        v, errors = f"/{self.variant}", error_responses(404, 409, 413, 422, 503)
        obj = APIRoute(f"{v}/objects/{{uid}}", self.download, methods=["GET"], response_class=Response,
                       responses=error_responses(307, 404, 503))
        if self.variant == "proxy":
            return [APIRoute(f"{v}/objects", self.proxy_upload, methods=["POST"], status_code=201,
                             responses=error_responses(400, 411, 413, 422, 503)), obj]
        if self.variant == "presigned":
            return [APIRoute(f"{v}/uploads", self.presign, methods=["POST"], status_code=201, responses=errors),
                    APIRoute(f"{v}/uploads/{{uid}}/complete", self.complete, methods=["POST"], responses=errors), obj]
        return [APIRoute(f"{v}/uploads", self.multipart_start, methods=["POST"], status_code=201, responses=errors),
                APIRoute(f"{v}/uploads/{{uid}}/resume", self.resume, methods=["POST"], responses=errors),
                APIRoute(f"{v}/uploads/{{uid}}/complete", self.multipart_complete, methods=["POST"],
                         responses=errors), obj]


async def _store_failed(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, StoreError) else 503
    return JSONResponse({"error": f"object store: {exc}" if isinstance(exc, StoreError) else
                         f"object store unavailable: {type(exc).__name__}"}, status_code=status)


def build(settings: TargetSettings | None = None, blobs: Settings | None = None, store_at: S3Settings | None = None):
    """The app; the arguments replace the env (tests build their own app this way)."""
    settings, blobs, store_at = settings or TargetSettings(), blobs or Settings(), store_at or S3Settings()
    pg = Postgres(settings.pg_dsn, size=settings.pg_pool_size)
    s3 = S3(store_at.url, store_at.access_key, store_at.secret_key, blobs.bucket)
    records = Records(pg)
    routes = [route for name in VARIANTS for route in Blobs(name, s3, records, blobs).routes()]
    app = create_app(MODULE, VARIANTS, routes=routes, resources=[pg, s3], settings=settings, setup=records.setup)
    for exc in (StoreError, httpx.HTTPError, ConnectionError, TimeoutError):
        app.add_exception_handler(exc, _store_failed)
    from botocore.exceptions import BotoCoreError

    app.add_exception_handler(BotoCoreError, _store_failed)
    app.add_middleware(StreamCounter)
    return app


app = build()
