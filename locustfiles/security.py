"""Security & Access: good clients (and, in the abuse scenario, one abuser) against each variant.

Run it as plain Locust (web UI, or add --headless -t 30s):

    locust -f locustfiles/security.py --scenario abuse --variant token_bucket

The variants, scenarios and claims are the module's spec (`harness/modules/security.py`). Every request
is named by who sent it, so the report shows good and abusive traffic apart:

  GET /resource (good)      good clients: a logged-in user (auth variants) or one of 8 API keys used in turn
                            (limiters, half the limit each); a 429 is a failure: a good client refused
  GET /resource (abuser)    one API key at --abuser-rate (its own open-model arrival stream); 429 is the
                            expected answer, counted as a success
  GET /resource (boundary)  the boundary prober: bursts aligned on its window's edge; 429 expected

When the test stops, the attack checks (locustfiles/security_checks.py) run against an auth variant.
"""

from __future__ import annotations

import itertools
import time
import uuid

import gevent
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

from harness import loadgen
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.modules.security import ABUSER, AUTH, EDGE, GOOD, GOOD_KEYS, SETTINGS, SPEC
from locustfiles.security_checks import attack

EXPECTED = (200, 429)  # the abuser's and the prober's answers: either is what the limiter should say
_users, _keys = itertools.count(), itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("security")
    group.add_argument("--abuser-rate", type=float, default=0.0, env_var="LOCUST_ABUSER_RATE",
                       help="the abusive API key's arrivals/s (0: no abuser)")


plugin = loadgen.setup(SPEC)
plugin.arrival_stream("abuser", lambda options: options.abuser_rate)


def expected_refusal(response) -> None:
    """A limiter's 429 to the abuser or the prober is the right answer, not a failure."""
    if response.status_code in EXPECTED:
        response.success()
    else:
        response.failure(f"HTTP {response.status_code}")


class Caller(loadgen.Paced, FastHttpUser):
    """A good client: logs in once before the load (auth variants) or uses the API keys in turn."""

    def on_start(self) -> None:
        variant = self.environment.parsed_options.variant
        self.path, self.headers = f"/{variant}/resource", {}
        if variant in AUTH:
            response = self.client.post(f"/{variant}/login", name="POST /login",
                                        json={"user": f"user-{next(_users)}",
                                              "password": SETTINGS.password.get_secret_value()})
            if response.status_code == 200 and variant != "session":
                self.headers = {"Authorization": f"Bearer {response.json()['token']}"}
        super().on_start()

    @task
    def resource(self) -> None:
        headers = self.headers or {"X-API-Key": f"good-{next(_keys) % GOOD_KEYS}"}
        self.client.get(self.path, headers=headers, name=GOOD)


class Abuser(loadgen.Paced, FastHttpUser):
    stream, fixed_count = "abuser", 20

    def on_start(self) -> None:
        self.path = f"/{self.environment.parsed_options.variant}/resource"
        super().on_start()

    @task
    def resource(self) -> None:
        with self.client.get(self.path, headers={"X-API-Key": "abuser-1"}, name=ABUSER,
                             catch_response=True) as response:
            expected_refusal(response)


class EdgeProber(FastHttpUser):
    """Opens a window with one request at t0, sends limit-1 just before t0 + window and limit just after,
    then idles two windows so every limiter forgets it; one fresh key per test."""

    def on_start(self) -> None:
        self.path = f"/{self.environment.parsed_options.variant}/resource"
        self.headers = {"X-API-Key": f"edge-{uuid.uuid4().hex[:12]}"}

    def wait_time(self) -> float:
        return 0.0

    def burst(self, count: int) -> None:
        gevent.joinall([gevent.spawn(self.hit) for _ in range(count)], timeout=5)

    def hit(self) -> None:
        with self.client.get(self.path, headers=self.headers, name=EDGE, catch_response=True) as response:
            expected_refusal(response)

    @task
    def cycle(self) -> None:
        window, limit = SETTINGS.window_s, SETTINGS.limit
        sent = time.monotonic()
        self.hit()  # the window opened on the target between `sent` and `answered`
        answered = time.monotonic()
        gevent.sleep(max(0.0, sent + window - 0.3 - time.monotonic()))
        self.burst(limit - 1)
        gevent.sleep(max(0.0, answered + window + 0.05 - time.monotonic()))
        self.burst(limit)
        gevent.sleep(2 * window + 0.2)


@events.init.add_listener
def _user_classes(environment, **_) -> None:
    """The scenario decides who calls: the prober alone (boundary), good clients and the abuser (an abuser
    rate), or good clients. Workers keep all three: they spawn by the names the master sends."""
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    if options.scenario == "boundary":
        environment.user_classes = [EdgeProber]
    elif options.abuser_rate > 0:
        environment.user_classes = [Caller, Abuser]
    else:
        environment.user_classes = [Caller]


@plugin.invariant("forged_accepted", "revoked_accepted", "escalation_accepted")
def _attacks(environment) -> list:
    variant = environment.parsed_options.variant
    if variant not in AUTH:
        return []
    return attack(environment.host, variant, SETTINGS.password.get_secret_value())
