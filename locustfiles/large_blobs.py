"""Large Blobs: uploads through the app against pre-signed uploads straight to the object store.

    locust -f locustfiles/large_blobs.py --variant presigned --scenario upload_10mib

Each user uploads `--size-mib` objects back to back (or, with --download, downloads the phase's
fixture objects). One upload, every step of it (presign, PUT, complete; or each part), is one
"transfer" request, so its latency and rate are what a user sees. Bodies are generated and streamed
(locustfiles/large_blobs_client.py). A user's 1st, 11th, 21st... presigned or multipart upload is a deliberately bad
`complete` (nothing uploaded) that the target must refuse. With --interrupt, a multipart upload stops
after half its parts and resumes. When the test stops, every object of the phase is read back from the
store and hashed, and (scenario security) the forged uploads are tried.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests
from locust import User, events, task
from locust.runners import WorkerRunner

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.large_blobs import SPEC, TRANSFER
from harness.settings import get_settings, hostport
from locustfiles import large_blobs_client as client

SETTINGS = SPEC.settings()
BAD_EVERY = 10
FIXTURES = 4
ACKED, BAD_ACCEPTED, RESUMES = "uploads_acknowledged", "bad_completes_accepted", "resumes"
BAD_TRIED = "bad_completes_tried"
plugin = loadgen.setup(SPEC)
_fixtures: list[str] = []


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("large_blobs")
    group.add_argument("--size-mib", type=int, default=1, env_var="LOCUST_SIZE_MIB", help="object size in MiB")
    group.add_argument("--interrupt", action="store_true", default=False,
                       help="multipart: cut every upload off after half its parts, then resume it")
    group.add_argument("--download", action="store_true", default=False, help="download instead of upload")


def tag(options) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{options.run_id}.{options.phase}.{options.variant}")[:80]


class Uploader(loadgen.Paced, User):
    def on_start(self) -> None:
        self.options, self.session, self.count = self.environment.parsed_options, requests.Session(), 0
        self.base, self.plugin = self.environment.host, self.environment.harness
        self.size = self.options.size_mib * client.MIB
        super().on_start()

    def on_stop(self) -> None:
        self.session.close()

    @task
    def transfer(self) -> None:
        self.count += 1
        started, exception = time.perf_counter(), None
        try:
            if self.options.download:
                client.download(self.session, self.base, self.options.variant,
                                _fixtures[self.count % len(_fixtures)], self.size)
            elif self.options.variant != "proxy" and self.count % BAD_EVERY == 1:  # a user's 1st, 11th, ...
                self.bad_complete()
                return
            else:
                self.upload()
        except Exception as exc:  # recorded as this transfer's failure, with its reason
            exception = exc
        self.environment.events.request.fire(
            request_type="UPLOAD" if not self.options.download else "DOWNLOAD", name=TRANSFER,
            response_time=(time.perf_counter() - started) * 1000, response_length=self.size,
            exception=exception, context=self.context(), response=getattr(exception, "response", None))

    def upload(self) -> None:
        o = self.options
        done = client.upload(self.session, self.base, o.variant, self.size, tag(o),
                             part_size=SETTINGS.part_mib * client.MIB, interrupt=o.interrupt)
        self.plugin.add_id(ACKED, done["uid"])
        if "resume" in done:
            facts = done["resume"]
            self.plugin.add_id(RESUMES, f"{done['uid']}:{facts['parts']}:{','.join(map(str, facts['sent_before']))}:"
                                        f"{','.join(map(str, facts['resigned']))}")

    def bad_complete(self) -> None:
        """Ask to record an upload whose bytes never reached the store: it must be refused."""
        self.plugin.tally(BAD_TRIED)
        try:
            done = client.upload(self.session, self.base, self.options.variant, client.MIB, tag(self.options),
                                 skip_put=True) if self.options.variant == "presigned" else self._bad_multipart()
            self.plugin.add_id(BAD_ACCEPTED, done["uid"])
        except client.Failed as failed:
            if failed.status != 409:
                raise


    def _bad_multipart(self) -> dict:
        uid = client.new_uid()
        sha, parts = client.digests(uid, 12 * client.MIB, SETTINGS.part_mib * client.MIB)
        grant = client.expect("start", self.session.post(f"{self.base}/multipart/uploads", json={
            "size": 12 * client.MIB, "sha256": sha, "part_sha256": parts, "tag": tag(self.options)}, timeout=30),
            201).json()
        return client.expect("complete", self.session.post(
            f"{self.base}/multipart/uploads/{grant['uid']}/complete", timeout=30), 200, 201).json()


@events.test_start.add_listener
def _prepare(environment, **_) -> None:
    """Downloads read the same few objects, uploaded once per phase through the presigned path."""
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or not options.download:
        return
    _fixtures.clear()

    def one(_) -> str:
        with requests.Session() as session:
            return client.upload(session, environment.host, "presigned", options.size_mib * client.MIB,
                                 tag(options))["uid"]

    with ThreadPoolExecutor(FIXTURES) as pool:  # at once: the time they take comes out of the phase's window
        _fixtures.extend(pool.map(one, range(FIXTURES)))


# --- invariants: the checks are in large_blobs_client (tests call them); their registrations -------
def _pg():
    return psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True)


@plugin.invariant("missing_objects", "mismatched_objects")
def _objects(environment) -> list:
    """Every recorded object of the phase read back and hashed; then the phase's objects are deleted and
    their space reclaimed (the run keeps its results, not its load: 13 GB for one default run otherwise)."""
    settings, phase = get_settings(), tag(environment.parsed_options)
    s3 = client.s3_client(settings)
    with _pg() as conn:
        results = client.check_objects(conn, s3, SETTINGS.bucket, phase)
    try:
        client.prune(s3, SETTINGS.bucket, [f"{variant}/{phase}/" for variant in SPEC.variant_names],
                     master_url=f"http://{hostport(settings.s3_host, settings.s3_port + 1)}")
    except Exception:  # the checks above are what this phase owes; a store that will not delete is logged
        logging.getLogger("harness").exception("could not delete the phase's objects from the store")
    return results


@plugin.invariant("lost_uploads", "bad_completes_accepted")
def _acknowledged(environment) -> list:
    options, harness = environment.parsed_options, environment.harness
    if options.download:
        return []
    with _pg() as conn:
        results = client.check_acknowledged(conn, tag(options), harness.ids(ACKED), harness.ids(BAD_ACCEPTED),
                                            harness.recorder.tallies.get(BAD_TRIED, 0))
    return results if options.variant != "proxy" else results[:1]


@plugin.invariant("resume_resent_parts")
def _resumes(environment) -> list:
    if not environment.parsed_options.interrupt:
        return []
    with _pg() as conn:
        return [client.check_resumes(conn, environment.harness.ids(RESUMES))]


@plugin.invariant(*(i.name for i in SPEC.invariants if i.name.startswith("security_")))
def _security(environment) -> list:
    options = environment.parsed_options
    if options.scenario != "security":
        return []
    return client.security_checks(environment.host, tag(options))
