"""Scaling Writes: click events ingested one commit each, micro-batched, or through a Kafka topic.

Run it as plain Locust (web UI, or add --headless -u 48 -t 30s):

    locust -f locustfiles/scaling_writes.py --variant batched

The variants, scenarios (--scenario) and claims are the module's spec (`harness/modules/scaling_writes.py`).
Each user posts small click events (about 200 bytes) with a client-generated UUID; every event of a
phase carries the tag `<run id>:<phase>`. The load remembers every id it sent and every id the target
acknowledged (2xx). When the test stops, PostgreSQL itself is checked by id set: every acknowledged id
is present exactly once, and no id is present that was never sent. For `queued` the check waits first
until the consumer's lag is 0 and stays there (30 s at most, after which the invariants fail).

No Kafka client here: Locust runs under gevent, so the consumer's lag is read from its /lag endpoint.
"""

from __future__ import annotations

import random
import time
import uuid

import psycopg
from locust import FastHttpUser, task

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.scaling_writes import INGEST, SPEC
from harness.settings import get_settings

try:  # Locust puts the locustfile's directory on sys.path; a checkout also has the package
    from scaling_writes_checks import check_events, drained
except ImportError:
    from locustfiles.scaling_writes_checks import check_events, drained

SENT, ACKNOWLEDGED = "events_sent", "events_acknowledged"
SETTLE_TIMEOUT_S = 30
REFERRERS = (None, "https://news.example.org/", "https://social.example.com/feed", "https://mail.example.net/")
plugin = loadgen.setup(SPEC)


def tag_of(options) -> str:
    """Every event of a phase carries it, so the phase's rows are found in PostgreSQL."""
    return f"{options.run_id}:{options.phase}"


def click(tag: str, rng: random.Random) -> dict:
    code = "".join(rng.choices("abcdefghijkmnopqrstuvwxyz23456789", k=7))
    return {"id": str(uuid.uuid4()), "tag": tag, "short_code": code,
            "url": f"https://example.com/articles/{rng.randrange(100_000)}?utm_source=short",
            "referrer": rng.choice(REFERRERS), "user_agent": "Mozilla/5.0 (X11; Linux x86_64) harness-clicker/1.0",
            "clicked_at": time.time()}


class Clicker(loadgen.Paced, FastHttpUser):
    """Closed model (default): no think time. Open model (--rate R): R events per second."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.path, self.tag, self.rng = f"/{options.variant}/events", tag_of(options), random.Random()
        self.plugin = self.environment.harness
        super().on_start()

    @task
    def post_event(self) -> None:
        event = click(self.tag, self.rng)
        self.plugin.add_id(SENT, event["id"])  # before sending: a row whose answer was lost is still "sent"
        response = self.client.post(self.path, json=event, name=INGEST)
        if response.status_code in (201, 202):
            self.plugin.add_id(ACKNOWLEDGED, event["id"])


# --- invariants: the checks are in scaling_writes_checks.py (no Locust there; tests import them) -----
def _settled(environment) -> bool:
    return environment.parsed_options.variant != "queued" or drained()


@plugin.invariant("lost_events", "duplicate_events", "phantom_events", settle=_settled,
                  settle_timeout_s=SETTLE_TIMEOUT_S)
def _events_kept(environment) -> list:
    harness = environment.harness
    with psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True) as conn:
        return check_events(conn, tag_of(environment.parsed_options), harness.ids(SENT), harness.ids(ACKNOWLEDGED))
