"""Large Blobs' target against the real embedded stack (PostgreSQL, SeaweedFS): streaming memory, the
checks of `complete`, multipart resume, the store's security checks, and a store killed mid-use."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import psutil
import pytest
import requests

from harness.modules import get_module
from harness.settings import get_settings
from harness.stack import Stack

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
from locustfiles import large_blobs_client as client  # noqa: E402

pytestmark = pytest.mark.integration
SPEC = get_module("large_blobs")
MIB = client.MIB


@pytest.fixture(scope="module")
def base(target_urls) -> str:
    return target_urls["large_blobs"]


@pytest.fixture(scope="module")
def s3(stack):
    return client.s3_client(get_settings())


def _target_rss_peak(pid: int, during) -> tuple[int, int]:
    """(RSS before, peak RSS while `during()` runs), sampled every 10 ms."""
    process, peak, done = psutil.Process(pid), [0], threading.Event()
    before = process.memory_info().rss

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        during()
    finally:
        done.set()
        sampler.join(timeout=5)
    return before, peak[0]


def test_proxy_memory_stays_flat_with_a_100_mib_upload(stack, base):
    pid = Stack(get_settings()).state["large_blobs"]["pid"]
    with requests.Session() as session:
        client.upload(session, base, "proxy", 8 * MIB, "pytest")  # warm the code paths first
        results = []
        before, peak = _target_rss_peak(pid, lambda: results.append(
            client.upload(session, base, "proxy", 100 * MIB, "pytest")))
    assert results[0]["size"] == 100 * MIB
    assert peak - before < 25 * MIB, f"the proxy grew {(peak - before) / MIB:.0f} MiB for a 100 MiB upload"


def _pending(base: str, size: int, sha: str) -> dict:
    response = requests.post(f"{base}/presigned/uploads", json={"size": size, "sha256": sha, "tag": "pytest"},
                             timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("wrong", ["size", "checksum"])
def test_complete_refuses_an_object_that_does_not_match(base, s3, wrong):
    uid = client.new_uid()
    sha, _ = client.digests(uid, MIB)
    grant = _pending(base, MIB, sha)
    body = client.Body(uid, size=MIB).read(MIB)
    other = body[:-1] if wrong == "size" else body[:-1] + bytes([body[-1] ^ 1])
    # the store refuses such a body on the signed URL; the harness's own key writes it past those checks
    s3.put_object(Bucket=SPEC.settings().bucket, Key=grant["key"], Body=other,
                  ContentType="application/octet-stream",
                  ChecksumSHA256=client.b64_sha256(other))
    response = requests.post(f"{base}/presigned/uploads/{grant['uid']}/complete", timeout=10)
    assert response.status_code == 409, response.text
    assert requests.get(f"{base}/proxy/objects/{grant['uid']}", timeout=10).status_code == 404  # not recorded


def test_complete_refuses_an_upload_that_never_reached_the_store(base):
    grant = _pending(base, MIB, "0" * 64)
    assert requests.post(f"{base}/presigned/uploads/{grant['uid']}/complete", timeout=10).status_code == 409


def test_multipart_resume_signs_only_the_missing_parts(base, s3):
    with requests.Session() as session:
        done = client.upload(session, base, "multipart", 30 * MIB, "pytest", interrupt=True)
    facts = done["resume"]
    assert facts["parts"] == 4 and facts["sent_before"] == [1, 2] and facts["resigned"] == [3, 4]
    found = client.stored_digest(s3, SPEC.settings().bucket, done["key"], 8 * MIB)
    assert found == (30 * MIB, done["sha256"])


def test_the_store_refuses_every_forged_upload(base):
    results = client.security_checks(base, "pytest")
    assert [r.name for r in results] == [i.name for i in SPEC.invariants if i.name.startswith("security_")]
    assert all(r.value == 0 and r.passed for r in results), results


def test_a_store_that_accepts_a_forged_upload_is_reported_not_enforced():
    verdict = client.security_verdict("expired_url", 200, "", 201)
    assert verdict.value == 1 and not verdict.passed and "NOT ENFORCED" in verdict.detail
    tampered = client.security_verdict("tampered_signature", 200, "", 409)  # took a tampered signature
    assert tampered.value == 1 and not tampered.passed and "NOT ENFORCED" in tampered.detail


def test_a_store_that_refuses_everything_proves_nothing():
    """A store answering 403 AccessDenied to every request would refuse each forgery, for the wrong
    reason: only the expired URL may be refused with it; a signature forgery needs SignatureDoesNotMatch."""
    verdicts = {name: client.security_verdict(name, 403, "AccessDenied", 409) for name in client.REFUSALS}
    assert [n for n, v in verdicts.items() if v.passed] == ["expired_url"]
    assert all("refused for another reason" in v.detail for n, v in verdicts.items() if n != "expired_url")
    assert not client.security_verdict("too_large", 500, "InternalError", 409).passed
    assert client.security_verdict("tampered_signature", 403, "SignatureDoesNotMatch", 409).passed
    recorded = client.security_verdict("tampered_signature", 403, "SignatureDoesNotMatch", 201)
    assert not recorded.passed and "the target recorded the object" in recorded.detail


@pytest.mark.parametrize("headers, body, status", [({}, None, 411), ({"Content-Length": str(300 * MIB)}, b"", 413)])
def test_proxy_refuses_bodies_without_a_length_or_too_large(base, headers, body, status):
    def chunks():
        yield b"x" * 10

    data = chunks() if body is None else body
    response = requests.post(f"{base}/proxy/objects", params={"sha256": "0" * 64}, data=data, headers=headers,
                             timeout=10)
    assert response.status_code == status, response.text


def test_store_killed_answers_503_records_nothing_and_recovers(stack, base):
    owned = Stack(get_settings())
    if not owned.owns("s3"):
        pytest.skip("the S3 store is not run by this session's stack")
    uid = client.new_uid()
    sha, _ = client.digests(uid, MIB)
    owned.fault_begin("s3", "kill")
    try:
        response = requests.post(f"{base}/proxy/objects", params={"sha256": sha, "tag": "pytest"},
                                 data=client.Body(uid, size=MIB), timeout=30)
        assert response.status_code in (502, 503), response.text
        grant = _pending(base, MIB, sha)  # signing needs no store
        assert requests.post(f"{base}/presigned/uploads/{grant['uid']}/complete", timeout=30).status_code == 503
    finally:
        owned.fault_end("s3", "kill")
    with requests.Session() as session:
        done = client.upload(session, base, "proxy", MIB, "pytest")
    downloaded = requests.get(f"{base}/proxy/objects/{done['uid']}", timeout=30).content
    assert hashlib.sha256(downloaded).hexdigest() == done["sha256"] == client.digests(done["body_uid"], MIB)[0]
