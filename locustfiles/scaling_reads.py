"""Scaling Reads: a product catalogue read straight from PostgreSQL or through a Redis cache.

Run it as plain Locust (web UI, or add --headless -u 32 -t 60s):

    locust -f locustfiles/scaling_reads.py --variant cache_aside

Workloads (--scenario):
  ycsb      YCSB-style: zipfian key popularity (constant 0.99) over the whole catalogue, 95% reads
            and 5% writes (half new reviews, half price changes); --write-ratio, --zipf-constant.
  stampede  every user reads the hottest product while its cache entry is expired every 200 ms
            (what a TTL does to a hot key); counts database queries per expiry.
  stall     the ycsb workload while the target freezes for 2 s mid-window (coordinated omission).

With --rate R it runs as an open model: R arrivals per second served by the -u users.

Each test starts with the variant's cache flushed, and the warm-up (--warmup) is left out.
"""

from __future__ import annotations

import random

import gevent
import psycopg
import requests
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

from harness import loadgen
from harness.claims import Claim
from harness.loadgen import ProfileShape  # noqa: F401  (Locust plays the shape it finds here)
from harness.loadgen.zipf import Zipfian
from harness.settings import get_settings

MODULE = "scaling_reads"
VARIANTS = {
    "direct": "every read queries PostgreSQL",
    "cache_aside": "Redis first; on a miss PostgreSQL, then SET with a TTL; writes invalidate the key",
    "cache_aside_singleflight": "cache_aside, plus one recompute per key at a time; the others wait for it",
    "noop": "no I/O at all: the floor, showing what the pattern's own code costs",
}
CACHED = ("cache_aside", "cache_aside_singleflight")
# What `harness run scaling_reads` compares unless told otherwise; noop is the floor, on request.
DEFAULT_VARIANTS = ["direct", *CACHED]
SCENARIOS = {
    "ycsb": {"variants": list(VARIANTS)},
    "stampede": {"variants": list(CACHED), "users": 32, "duration_s": 10, "warmup_s": 2},
    # Open model: the ycsb workload at a rate every variant can serve, timed from intended starts.
    "fixed_rate": {"variants": list(VARIANTS), "rate": 250, "users": 200, "duration_s": 15, "warmup_s": 5},
    # Open model, rising rates: latency-vs-throughput curves and each variant's knee.
    "sweep": {"variants": list(VARIANTS), "rates": [150, 300, 450, 600, 900], "users": 300,
              "duration_s": 8, "warmup_s": 3},
    # Coordinated omission, shown: the target freezes for STALL_S mid-window, once under 8 closed-model
    # users and once at 200 arrivals/s (a pool big enough to keep serving arrivals through the stall).
    "stall": {"variants": ["noop"], "loads": [{"rate": 0, "users": 8}, {"rate": 200, "users": 600}],
              "duration_s": 12, "warmup_s": 2},
}
STALL_S = 2.0
# `harness run scaling_reads` runs these; the open-model ones on request (--scenarios fixed_rate sweep).
DEFAULT_SCENARIOS = ["ycsb", "stampede"]
# The request whose exact latency the claims and the summary's percentiles speak of.
LATENCY_OF = "GET /products/[id]"
# Server-side ratios of counter increases over each phase's measured window, per variant.
SERVER_RATIOS = {
    "hit_ratio": ('harness_cache_lookups_total{result="hit"}', "harness_cache_lookups_total"),
    "db_queries_per_read": ('harness_db_queries_total{kind="read"}',
                            'harness_http_request_duration_seconds_count{endpoint="GET /products/{product_id}"}'),
    "db_queries_per_expiry": ('harness_db_queries_total{kind="read"}',
                              'harness_cache_invalidations_total{reason="expire"}'),
}
# Thresholds hold with margin on a shared 2-core machine where the load generator, the target,
# PostgreSQL and Redis compete for the same cores (see README for the runs they were set from).
CLAIMS = [
    Claim("cache_throughput", "A cache in front of the database multiplies read throughput.",
          "rps", "cache_aside", ">=", 1.5, baseline="direct", scenario="ycsb"),
    Claim("cache_p50", "Cache-aside cuts read latency: the median read is far faster.",
          "p50_ms", "cache_aside", "<=", 0.6, baseline="direct", scenario="ycsb"),
    Claim("cache_p95", "Cache-aside cuts read latency at p95 too.",
          "p95_ms", "cache_aside", "<=", 0.75, baseline="direct", scenario="ycsb"),
    Claim("cache_p99", "The tail improves least: misses still pay the database's price, so p99 drops "
          "less than the median.",
          "p99_ms", "cache_aside", "<=", 0.9, baseline="direct", scenario="ycsb"),
    Claim("hit_ratio", "With zipfian popularity, a cache starting cold serves most reads within half a minute.",
          "hit_ratio", "cache_aside", ">=", 0.5, scenario="ycsb"),
    Claim("db_offload", "The cache takes most reads off the database.",
          "db_queries_per_read", "cache_aside", "<=", 0.5, scenario="ycsb"),
    Claim("stampede", "Without stampede protection an expiring hot key sends a burst of identical queries "
          "to the database; single-flight sends one.",
          "db_queries_per_expiry", "cache_aside_singleflight", "<=", 0.25, baseline="cache_aside",
          scenario="stampede"),
    Claim("stampede_one_query", "Single-flight recomputes an expired key once.",
          "db_queries_per_expiry", "cache_aside_singleflight", "<=", 1.5, scenario="stampede"),
    Claim("stampede_tail", "A stampede shows in the tail latency of every reader of the hot key; "
          "single-flight keeps it short.",
          "p99_ms", "cache_aside_singleflight", "<=", 0.5, baseline="cache_aside", scenario="stampede"),
    # Open model: latency timed from each arrival's intended start (no coordinated omission).
    Claim("fixed_rate_p95", "At a fixed rate the database can still serve, the cache cuts the p95 of reads.",
          "p95_ms", "cache_aside", "<=", 0.4, baseline="direct", scenario="fixed_rate"),
    Claim("fixed_rate_p99", "At that rate the cache cuts the p99 too: hot keys stop queueing behind aggregates.",
          "p99_ms", "cache_aside", "<=", 0.6, baseline="direct", scenario="fixed_rate"),
    Claim("knee", "A cache moves the knee: the arrival rate a service holds within its latency bound rises.",
          "knee_rate", "cache_aside", ">=", 1.5, baseline="direct", scenario="sweep"),
    Claim("stall_open", "Timed from each arrival's intended start, a 2 s server stall shows in p99 as wrk2's "
          "arithmetic predicts (about 2 s - 1% of the window).",
          "p99_ms", "noop", ">=", 1000, scenario="stall@200"),
    Claim("stall_closed", "The closed model hides the same stall: its users stop sending while the server is "
          "frozen (coordinated omission), so its p99 stays near normal.",
          "p99_ms", "noop", "<=", 250, scenario="stall@closed"),
    Claim("stale_reads", "Invalidating on write means a read after the write sees it.",
          "stale_reads", "cache_aside", "==", 0, scenario="ycsb"),
    Claim("stale_reads_singleflight", "Single-flight keeps read-your-write after invalidation.",
          "stale_reads", "cache_aside_singleflight", "==", 0, scenario="ycsb"),
]

HOT_PRODUCT = 1
EXPIRE_EVERY_S = 0.2
STALE_PROBES = 50
plugin = loadgen.setup(MODULE, VARIANTS, SCENARIOS)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("scaling_reads")
    group.add_argument("--write-ratio", type=float, default=0.05, env_var="LOCUST_WRITE_RATIO",
                       help="share of operations that write (0..1)")
    group.add_argument("--zipf-constant", type=float, default=0.99, env_var="LOCUST_ZIPF_CONSTANT",
                       help="skew of key popularity, YCSB's constant (0 < c < 1)")
    group.add_argument("--key-space", type=int, default=0, env_var="LOCUST_KEY_SPACE",
                       help="draw keys from the N most popular products only (default: the whole catalogue)")


@events.init.add_listener
def _check_options(environment, **_) -> None:
    options, products = environment.parsed_options, get_settings().products
    problems = [text for bad, text in (
        (not 0 <= options.write_ratio <= 1, f"--write-ratio must be between 0 and 1, got {options.write_ratio}"),
        (not 0 < options.zipf_constant < 1, f"--zipf-constant must be in (0, 1), got {options.zipf_constant}"),
        (not 0 <= options.key_space <= products,
         f"--key-space must be between 0 and {products} (the catalogue), got {options.key_space}"),
    ) if bad]
    if problems:
        raise SystemExit("; ".join(problems))


_keys: dict[tuple[int, float], Zipfian] = {}


def write_tag(options) -> str:
    return f"{options.run_id or 'manual'}:{options.phase}"


class Shopper(loadgen.Paced, FastHttpUser):
    """Closed model (default): no think time, so together the users find the maximum throughput.
    Open model (--rate R): R arrivals per second, each served by a free user."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.prefix, self.options = f"/{options.variant}", options
        space = (options.key_space or get_settings().products, options.zipf_constant)
        if space not in _keys:  # zeta over the key space is computed once per process
            _keys[space] = Zipfian(*space)
        self.keys, self.rng = _keys[space], random.Random()
        super().on_start()

    @task
    def operate(self) -> None:
        if self.options.scenario == "stampede":
            self.read(HOT_PRODUCT)
            return
        product = self.keys.next() + 1
        if self.rng.random() < self.options.write_ratio:
            self.write(product)
        else:
            self.read(product)

    def read(self, product: int) -> None:
        self.client.get(f"{self.prefix}/products/{product}", name="GET /products/[id]")

    def write(self, product: int) -> None:
        if self.rng.random() < 0.5:
            review = {"rating": self.rng.randint(1, 5), "body": "load test review", "tag": write_tag(self.options)}
            response = self.client.post(f"{self.prefix}/products/{product}/reviews", json=review,
                                        name="POST /products/[id]/reviews")
            if response.status_code == 201:
                loadgen.tally("reviews_acknowledged")
        else:
            self.client.put(f"{self.prefix}/products/{product}/price", name="PUT /products/[id]/price",
                            json={"price_cents": self.rng.randrange(100, 100_000)})


_background: list[gevent.Greenlet] = []
_started: dict = {}


@events.test_start.add_listener
def _prepare(environment, **_) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    with psycopg.connect(get_settings().pg_dsn, connect_timeout=5) as conn:
        _started["db_now"] = conn.execute("SELECT now()").fetchone()[0]
    if options.variant in CACHED:
        requests.post(f"{environment.host}/{options.variant}/cache/flush", timeout=30).raise_for_status()
    if options.scenario == "stampede":
        _background.append(gevent.spawn(_expire_hot_key, environment.host, options.variant))
    if options.scenario == "stall":
        measured = (options.run_time or 14) - options.warmup
        stall_at = options.warmup + measured / 2 - STALL_S / 2
        _background.append(gevent.spawn_later(stall_at, _stall_target, environment.host))


def _expire_hot_key(host: str, variant: str) -> None:
    """What a TTL does to a hot key, on a fixed beat; killed at test stop, bounded anyway."""
    with requests.Session() as session:
        for _ in range(int(3600 / EXPIRE_EVERY_S)):
            gevent.sleep(EXPIRE_EVERY_S)
            session.post(f"{host}/{variant}/cache/expire/{HOT_PRODUCT}", timeout=5)


def _stall_target(host: str) -> None:
    """Freeze the target once (its event loop blocks), mid-window."""
    requests.post(f"{host}/debug/stall", params={"seconds": STALL_S}, timeout=STALL_S + 10)


@events.test_stop.add_listener
def _stop_background(environment, **_) -> None:
    gevent.killall(_background)
    _background.clear()


@loadgen.invariant
def no_lost_writes(environment) -> list[dict]:
    """Every review the target acknowledged (201) is in PostgreSQL."""
    options = environment.parsed_options
    if options.variant == "noop" or options.scenario == "stampede":
        return []
    acknowledged = plugin.recorder.tallies["reviews_acknowledged"]
    with psycopg.connect(get_settings().pg_dsn, connect_timeout=5) as conn:
        found = conn.execute("SELECT count(*) FROM reviews WHERE tag = %s AND created_at >= %s",
                             (write_tag(options), _started["db_now"])).fetchone()[0]
    return [{"name": "lost_writes", "value": acknowledged - found, "expected": "== 0",
             "passed": acknowledged == found,
             "detail": f"{acknowledged} reviews acknowledged, {found} found in PostgreSQL"}]


@loadgen.invariant
def read_your_write(environment) -> list[dict]:
    """After a price change through the variant, a read through the same variant shows the new price."""
    options = environment.parsed_options
    if options.variant == "noop" or options.scenario == "stampede":
        return []
    stale, rng = 0, random.Random(7)
    base = f"{environment.host}/{options.variant}/products"
    with requests.Session() as session:
        for product in range(1, STALE_PROBES + 1):
            session.get(f"{base}/{product}", timeout=10).raise_for_status()  # make sure it is cached first
            price = rng.randrange(100, 100_000)
            session.put(f"{base}/{product}/price", json={"price_cents": price}, timeout=10).raise_for_status()
            stale += session.get(f"{base}/{product}", timeout=10).json()["price_cents"] != price
    return [{"name": "stale_reads", "value": stale, "expected": "== 0", "passed": stale == 0,
             "detail": f"{stale} of {STALE_PROBES} reads right after a write returned the old price"}]
