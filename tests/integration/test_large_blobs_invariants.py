"""Every Large Blobs invariant holds on a healthy case and fails on a deliberately broken one, against
the real PostgreSQL and S3 store of the embedded stack (the checks are the locustfile's, called with
explicit inputs)."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import requests

from harness.loadgen.invariants import wait_until
from harness.modules import get_module
from harness.settings import get_settings

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
from locustfiles import large_blobs_client as client  # noqa: E402

pytestmark = pytest.mark.integration
SPEC = get_module("large_blobs")
BUCKET = SPEC.settings().bucket


@pytest.fixture
def tag() -> str:
    return f"pytest-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def conn(stack):
    with psycopg.connect(get_settings().pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def s3(stack):
    return client.s3_client(get_settings())


def _uploads(base: str, tag: str) -> list[dict]:
    with requests.Session() as session:
        return [client.upload(session, base, variant, 6 * client.MIB, tag) for variant in SPEC.variant_names]


def test_objects_hold_then_fail_when_missing_or_changed(target_urls, conn, s3, tag):
    done = _uploads(target_urls["large_blobs"], tag)
    healthy = client.check_objects(conn, s3, BUCKET, tag)
    assert [(r.name, r.value, r.passed) for r in healthy] == [("missing_objects", 0, True),
                                                              ("mismatched_objects", 0, True)]
    s3.delete_object(Bucket=BUCKET, Key=done[0]["key"])  # recorded, but gone from the store
    s3.put_object(Bucket=BUCKET, Key=done[1]["key"], Body=b"other bytes")  # recorded, but different
    broken = {r.name: r for r in client.check_objects(conn, s3, BUCKET, tag)}
    assert broken["missing_objects"].value == 1 and not broken["missing_objects"].passed
    assert broken["mismatched_objects"].value == 1 and done[1]["uid"] in broken["mismatched_objects"].detail


def test_lost_uploads_and_bad_completes(target_urls, conn, tag):
    done = _uploads(target_urls["large_blobs"], tag)
    acknowledged = {d["uid"] for d in done}
    healthy = client.check_acknowledged(conn, tag, acknowledged, set())
    assert all(r.value == 0 and r.passed for r in healthy)
    broken = {r.name: r for r in client.check_acknowledged(conn, tag, acknowledged | {"f" * 32}, {"a" * 32})}
    assert broken["lost_uploads"].value == 1 and not broken["lost_uploads"].passed
    assert broken["bad_completes_accepted"].value == 1 and not broken["bad_completes_accepted"].passed
    untried = {r.name: r for r in client.check_acknowledged(conn, tag, acknowledged, set(), bad_tried=0)}
    assert not untried["bad_completes_accepted"].passed and "no bad complete was attempted" in \
        untried["bad_completes_accepted"].detail
    tried = {r.name: r for r in client.check_acknowledged(conn, tag, acknowledged, set(), bad_tried=3)}
    assert tried["bad_completes_accepted"].passed and "3 attempted" in tried["bad_completes_accepted"].detail


def test_resume_check_counts_parts_sent_twice(target_urls, conn, tag):
    with requests.Session() as session:
        done = client.upload(session, target_urls["large_blobs"], "multipart", 20 * client.MIB, tag,
                             interrupt=True)
    facts = done["resume"]
    record = (f"{done['uid']}:{facts['parts']}:{','.join(map(str, facts['sent_before']))}:"
              f"{','.join(map(str, facts['resigned']))}")
    assert client.check_resumes(conn, {record}).passed
    everything = ",".join(str(n) for n in range(1, facts["parts"] + 1))  # a resume that re-sent every part
    resent_all = f"{done['uid']}:{facts['parts']}:{','.join(map(str, facts['sent_before']))}:{everything}"
    broken = client.check_resumes(conn, {resent_all})
    assert broken.value == len(facts["sent_before"]) and not broken.passed


def _disk_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_a_phase_s_objects_are_pruned_and_their_space_reclaimed(target_urls, s3, tag):
    """After its checks, a phase's objects and unfinished multipart uploads are deleted under its
    prefixes, and the store's volumes are compacted: the disk holds results, not load."""
    data = get_settings().state_dir / "s3"
    with requests.Session() as session:
        done = [client.upload(session, target_urls["large_blobs"], "presigned", 16 * client.MIB, tag)
                for _ in range(4)]
    unfinished = s3.create_multipart_upload(Bucket=BUCKET, Key=f"multipart/{tag}/unfinished")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=f"multipart/{tag}/unfinished", UploadId=unfinished, PartNumber=1,
                   Body=b"x" * (5 * client.MIB))
    other = f"presigned/other-{tag}/kept"
    s3.put_object(Bucket=BUCKET, Key=other, Body=b"another phase's object")
    before = _disk_bytes(data)
    prefixes = [f"{variant}/{tag}/" for variant in SPEC.variant_names]
    master = f"http://127.0.0.1:{get_settings().s3_port + 1}"
    assert client.prune(s3, BUCKET, prefixes, master_url=master) == len(done)
    assert not any(s3.list_objects_v2(Bucket=BUCKET, Prefix=p).get("Contents") for p in prefixes)
    assert not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"multipart/{tag}/").get("Uploads")
    assert s3.get_object(Bucket=BUCKET, Key=other)["Body"].read() == b"another phase's object"  # not its prefix

    def reclaimed() -> bool:  # the store reports deletions with its heartbeat: the next vacuum reclaims them
        client.vacuum(master)
        return before - _disk_bytes(data) >= 48 * client.MIB  # at least 3 of the 4 objects' bytes

    assert wait_until(reclaimed, 40, interval_s=2), f"reclaimed {(before - _disk_bytes(data)) / client.MIB:.0f} MiB"
