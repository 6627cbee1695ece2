"""Large Blobs' client side, without Locust: generated bodies, one upload or download per variant, the
security checks and the invariant checks. The locustfile and the tests both use it.

Bodies are never held whole: an object is its 32-byte id followed by one shared random MiB repeated,
read in chunks (`Body`), so a user holds one chunk at a time; the SHA-256 is computed the same way.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.services_s3 import credentials
from harness.spec import InvariantResult

MIB = 1 << 20
BLOCK = os.urandom(MIB)
CHUNK = 256 * 1024


class Body:
    """A file-like view of bytes [start, start + length) of object `uid`: requests streams it."""

    def __init__(self, uid: str, start: int = 0, length: int | None = None, size: int = 0) -> None:
        self.prefix, self.pos = uid.encode().ljust(32, b"-")[:32], start
        self.end = start + (length if length is not None else size)

    def __len__(self) -> int:
        return self.end - self.pos

    def read(self, n: int = -1) -> bytes:
        n = len(self) if n is None or n < 0 else min(n, len(self), CHUNK)
        if n <= 0:
            return b""
        out = bytearray()
        while len(out) < n:
            at = self.pos + len(out)
            if at < 32:
                piece = self.prefix[at:32]
            else:
                offset = (at - 32) % MIB
                piece = BLOCK[offset:offset + CHUNK]
            out += piece[:n - len(out)]
        self.pos += n
        return bytes(out)


def digests(uid: str, size: int, part_size: int | None = None) -> tuple[str, list[str]]:
    """(SHA-256 of the object, SHA-256 of each part) without holding it."""
    whole, parts = hashlib.sha256(), []
    for start in range(0, size, part_size or size):
        part, body = hashlib.sha256(), Body(uid, start, min(part_size or size, size - start))
        while chunk := body.read(CHUNK):
            whole.update(chunk)
            part.update(chunk)
        parts.append(part.hexdigest())
    return whole.hexdigest(), parts


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def new_uid() -> str:
    return os.urandom(16).hex()


class Failed(Exception):
    def __init__(self, step: str, response: requests.Response) -> None:
        super().__init__(f"{step}: {response.status_code} {response.text[:200]}")
        self.status = response.status_code


def expect(step: str, response: requests.Response, *codes: int) -> requests.Response:
    if response.status_code not in codes:
        raise Failed(step, response)
    return response


def upload(session: requests.Session, base: str, variant: str, size: int, tag: str, part_size: int = 8 * MIB,
           interrupt: bool = False, skip_put: bool = False) -> dict:
    """One upload through `variant`; returns the target's record, plus `resume` facts for multipart."""
    uid = new_uid()  # names the body; the target picks the object's own id
    if variant == "proxy":
        sha, _ = digests(uid, size)
        return {**expect("upload", session.post(f"{base}/proxy/objects", params={"sha256": sha, "tag": tag},
                                                data=Body(uid, size=size), timeout=120), 201).json(), "body_uid": uid}
    if variant == "presigned":
        sha, _ = digests(uid, size)
        grant = expect("presign", session.post(f"{base}/presigned/uploads", json={"size": size, "sha256": sha,
                                                                                "tag": tag}, timeout=30), 201).json()
        if not skip_put:
            expect("put", session.put(grant["url"], data=Body(uid, size=size), headers=grant["headers"],
                                      timeout=120), 200)
        return expect("complete", session.post(f"{base}/presigned/uploads/{grant['uid']}/complete", timeout=30),
                      200, 201).json()
    return multipart(session, base, uid, size, tag, part_size, interrupt)


def multipart(session, base: str, uid: str, size: int, tag: str, part_size: int, interrupt: bool) -> dict:
    sha, parts = digests(uid, size, part_size)
    grant = expect("start", session.post(f"{base}/multipart/uploads", json={
        "size": size, "sha256": sha, "part_sha256": parts, "tag": tag}, timeout=30), 201).json()
    todo = grant["parts"][:len(grant["parts"]) // 2] if interrupt else grant["parts"]
    _put_parts(uid, grant["part_size"], todo)
    facts = {}
    if interrupt:  # the client "crashed" after half its parts; it asks what the store still lacks
        resumed = expect("resume", session.post(f"{base}/multipart/uploads/{grant['uid']}/resume", timeout=30),
                         200).json()["parts"]
        facts = {"sent_before": [p["number"] for p in todo], "resigned": [p["number"] for p in resumed],
                 "parts": len(parts)}
        _put_parts(uid, grant["part_size"], resumed)
    done = expect("complete", session.post(f"{base}/multipart/uploads/{grant['uid']}/complete", timeout=60),
                  200, 201).json()
    return {**done, "resume": facts} if facts else done


def _put_parts(uid: str, part_size: int, parts: list[dict], parallel: int = 4) -> None:
    def put(part: dict) -> None:
        with requests.Session() as session:
            start = (part["number"] - 1) * part_size
            expect(f"part {part['number']}", session.put(part["url"], data=Body(uid, start, part["size"]),
                                                         headers=part["headers"], timeout=120), 200)

    with ThreadPoolExecutor(parallel) as pool:  # gevent-patched threads under Locust: greenlets
        list(pool.map(put, parts))


def download(session: requests.Session, base: str, variant: str, uid: str, size: int) -> int:
    """Stream one object (following the redirect of presigned downloads); returns the bytes read."""
    with expect("download", session.get(f"{base}/{variant}/objects/{uid}", stream=True, timeout=120), 200) as r:
        read = sum(len(chunk) for chunk in r.iter_content(CHUNK))
    if read != size:
        raise RuntimeError(f"download of {uid}: {read} bytes, expected {size}")
    return read


# --- security: forged uploads the store must refuse -------------------------------------------------
# What an S3 store answers when it refuses each forgery for the reason tried (AWS's codes; SeaweedFS
# answers the same): a refusal for another reason (a store that answers 403 to everything, say) is not
# evidence that this check is enforced.
SIGNATURE = frozenset({"SignatureDoesNotMatch"})
REFUSALS = {
    "expired_url": frozenset({"AccessDenied", "ExpiredToken", "RequestExpired"}),  # AWS: 403 "Request has expired"
    "tampered_signature": SIGNATURE,
    "other_key": SIGNATURE,  # the key is part of what was signed
    "wrong_content_type": SIGNATURE,  # so is the Content-Type
    "too_large": SIGNATURE | {"BadDigest", "XAmzContentSHA256Mismatch", "EntityTooLarge", "IncompleteBody"},
}


def security_verdict(name: str, status: int, code: str, complete: int) -> InvariantResult:
    """0 when the store refused the forged upload with a code for the reason tried and the target's
    complete refused to record it; 1 otherwise: NOT ENFORCED when the store took it (never a pass)."""
    expected = REFUSALS[name]
    where = f"complete answered {complete}"
    if 200 <= status < 300:
        return InvariantResult(f"security_{name}", 1, "== 0 (refused)", False,
                               f"NOT ENFORCED by this store: it answered {status} to the forged upload; {where}")
    if not 400 <= status < 500 or code not in expected:
        return InvariantResult(f"security_{name}", 1, "== 0 (refused)", False,
                               f"refused for another reason: {status} {code or '(no S3 error code)'}, expected "
                               f"4xx {' or '.join(sorted(expected))}; {where}")
    if 200 <= complete < 300:
        return InvariantResult(f"security_{name}", 1, "== 0 (refused)", False,
                               f"the store refused ({status} {code}) but the target recorded the object: {where}")
    return InvariantResult(f"security_{name}", 0, "== 0 (refused)", True,
                           f"refused by the store: {status} {code}; {where}")


def security_checks(base: str, tag: str, session: requests.Session | None = None) -> list[InvariantResult]:
    session = session or requests.Session()
    size, uid = 4096, new_uid()
    sha, _ = digests(uid, size)

    def grant(**extra) -> dict:
        body = {"size": size, "sha256": sha, "tag": tag, **extra}
        return expect("presign", session.post(f"{base}/presigned/uploads", json=body, timeout=30), 201).json()

    def attempt(name: str, g: dict, url: str | None = None, headers: dict | None = None, data=None):
        response = session.put(url or g["url"], data=data if data is not None else Body(uid, size=size),
                               headers={**g["headers"], **(headers or {})}, timeout=30)
        code = response.text.partition("<Code>")[2].partition("</Code>")[0]
        complete = session.post(f"{base}/presigned/uploads/{g['uid']}/complete", timeout=30).status_code
        return security_verdict(name, response.status_code, code, complete)

    expiring = grant(expires_s=1)
    time.sleep(2.5)  # past the URL's expiry (and the store's one-second clock granularity)
    results = [attempt("expired_url", expiring)]
    g = grant()
    signature = g["url"].rsplit("X-Amz-Signature=", 1)[1][:64]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    results.append(attempt("tampered_signature", g, url=g["url"].replace(signature, forged)))
    first, second = grant(), grant()
    results.append(attempt("other_key", first, url=first["url"].replace(first["uid"], second["uid"])))
    results.append(attempt("wrong_content_type", grant(), headers={"Content-Type": "text/html"}))
    big_uid = new_uid()
    big_sha, _ = digests(big_uid, 2 * size)
    big = expect("presign", session.post(f"{base}/presigned/uploads", timeout=30, json={
        "size": size, "sha256": big_sha, "tag": tag}), 201).json()  # signed for 4 KiB, checksum of 8 KiB
    results.append(attempt("too_large", big, data=Body(big_uid, size=2 * size)))
    return results


# --- invariant checks, with explicit inputs (the locustfile registers them; tests call them) ---------
def s3_client(settings):
    import boto3
    from botocore.config import Config

    access, secret = credentials(settings)
    return boto3.client("s3", endpoint_url=settings.s3_url, aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name="us-east-1",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def stored_digest(s3, bucket: str, key: str, part_size: int | None) -> tuple[int, str] | None:
    """(size, SHA-256) of the store's object, read back in chunks; composite for a multipart object."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    whole, parts, part, in_part, size = hashlib.sha256(), [], hashlib.sha256(), 0, 0
    for chunk in body.iter_chunks(CHUNK):
        size += len(chunk)
        whole.update(chunk)
        while chunk:
            take = chunk if not part_size else chunk[:part_size - in_part]
            part.update(take)
            in_part, chunk = in_part + len(take), chunk[len(take):]
            if part_size and in_part == part_size:
                parts.append(part.digest())
                part, in_part = hashlib.sha256(), 0
    if not part_size:
        return size, whole.hexdigest()
    if in_part:
        parts.append(part.digest())
    return size, hashlib.sha256(b"".join(parts)).hexdigest() + f"-{len(parts)}"


def check_objects(conn, s3, bucket: str, tag_: str) -> list[InvariantResult]:
    rows = conn.execute("SELECT uid, key, size, sha256, part_size FROM blobs WHERE split_part(key, '/', 2) = %s",
                        (tag_,)).fetchall()
    missing, mismatched = [], []
    for uid, key, size, sha, part_size in rows:
        found = stored_digest(s3, bucket, key, part_size)
        if found is None:
            missing.append(uid)
        elif found != (size, sha):
            mismatched.append(uid)
    return [InvariantResult("missing_objects", len(missing), "== 0", not missing,
                            f"{len(rows)} recorded objects; missing from the store: {missing[:5]}"),
            InvariantResult("mismatched_objects", len(mismatched), "== 0", not mismatched,
                            f"{len(rows)} recorded objects read back and hashed; size or SHA-256 differs: "
                            f"{mismatched[:5]}")]


def vacuum(master_url: str) -> None:
    """Ask SeaweedFS's master to compact every volume with any deleted data (best effort: another S3
    store, compose's, has no such master and reclaims in its own way). A volume server reports its
    deletions with its heartbeat, every few seconds, so a vacuum right after a delete may find nothing
    yet: the next phase's vacuum reclaims it."""
    try:
        requests.get(f"{master_url}/vol/vacuum", params={"garbageThreshold": "0.0001"}, timeout=120)
    except requests.RequestException:
        pass


def prune(s3, bucket: str, prefixes: list[str], master_url: str | None = None) -> int:
    """Delete every object and abort every unfinished multipart upload under `prefixes` (a phase's keys,
    once its checks have read them back), and vacuum the store: what the phases before this one deleted
    is reclaimed now, this phase's once the store has reported it. Returns the objects deleted."""
    deleted = 0
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        for upload in s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    if master_url:
        vacuum(master_url)
    return deleted


def check_acknowledged(conn, tag_: str, acknowledged: set[str], bad_accepted: set[str],
                       bad_tried: int | None = None) -> list[InvariantResult]:
    """Acknowledged uploads against the recorded ones; and the bad completes accepted out of `bad_tried`
    attempted (None: not counted by the caller). None attempted is not a pass: nothing was checked."""
    recorded = {r[0] for r in conn.execute("SELECT uid FROM blobs WHERE split_part(key, '/', 2) = %s", (tag_,))}
    lost = acknowledged - recorded
    tried = "" if bad_tried is None else f"{bad_tried} attempted, "
    bad = (InvariantResult("bad_completes_accepted", 1, "== 0", False, "not measured: no bad complete was attempted")
           if bad_tried == 0 else
           InvariantResult("bad_completes_accepted", len(bad_accepted), "== 0", not bad_accepted,
                           f"{tried}{len(bad_accepted)} accepted: {sorted(bad_accepted)[:5]}"))
    return [InvariantResult("lost_uploads", len(lost), "== 0", not lost,
                            f"{len(acknowledged)} acknowledged, {len(recorded)} recorded; lost: {sorted(lost)[:5]}"),
            bad]


def check_resumes(conn, resumes: set[str]) -> InvariantResult:
    """Each resume re-signs exactly the parts not sent before it, once (the target's count agrees)."""
    resent, detail = 0, []
    for record in resumes:
        uid, parts, before, resigned = record.split(":")
        before_set = {int(n) for n in before.split(",") if n}
        resigned_set = {int(n) for n in resigned.split(",") if n}
        signed = conn.execute("SELECT parts_signed FROM blob_uploads WHERE uid = %s", (uid,)).fetchone()
        extra = len(resigned_set & before_set) + max(0, (signed[0] if signed else 0) - int(parts) - len(resigned_set))
        resent += extra
        if extra or resigned_set | before_set != set(range(1, int(parts) + 1)):
            detail.append(uid)
    return InvariantResult("resume_resent_parts", resent, "== 0", not resent and not detail,
                           f"{len(resumes)} resumed uploads; re-sent parts {resent}; wrong: {detail[:5]}")
