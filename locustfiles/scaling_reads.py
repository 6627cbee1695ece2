"""Scaling Reads: a product catalogue read straight from PostgreSQL or through a Redis cache.

Run it as plain Locust (web UI, or add --headless -u 32 -t 60s):

    locust -f locustfiles/scaling_reads.py --variant cache_aside

The variants, scenarios (--scenario, --load) and claims are the module's spec
(`harness/modules/scaling_reads.py`); a scenario's users, warm-up, rate and options become the
defaults. The workload: YCSB-style zipfian key popularity (--zipf-constant, default 0.99) over the
catalogue (or its --key-space most popular products), --write-ratio writes (half new reviews, half
price changes). `stampede` reads the hottest product while its entry is expired every 200 ms.
With --rate R it runs as an open model: R arrivals per second served by the -u users.

`http_cache` is reached through the stack's shared HTTP cache (HARNESS_HTTP_CACHE_PORT), the others
straight. With --read-own-writes every write is followed by a read of the same product (`ryw`).

Each test starts with the variant's cache flushed (denormalized: its aggregates rebuilt). Every
client logs, during the load, each read of a product whose price it changed: the version it wrote
and the version the read returned (the product's version grows by one per change of its row).
When the test stops, the invariants are checked against PostgreSQL, Redis and the replica:
acknowledged reviews by id (lost, duplicated), cached entries against their rows once the writes
settle, the clients' logs by product and version (a read older than the client's own write is
stale; behind the HTTP cache, only once max-age has passed), every product row of the replica
against the primary's, and the denormalized aggregates against fresh ones.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from datetime import datetime

import gevent
import psycopg
import redis
import requests
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner
from prometheus_client.parser import text_string_to_metric_families

from harness import loadgen
from harness.loadgen import (
    ProfileShape,  # noqa: F401  (Locust plays the shape it finds here)
    invariants,
)
from harness.loadgen.zipf import Zipfian
from harness.modules.scaling_reads import CACHED, PRODUCT_READ, SPEC
from harness.settings import get_settings

SETTINGS = SPEC.settings()

HOT_PRODUCT = 1
EXPIRE_EVERY_S = 0.2
TAG_MAX = 64  # the target's limit on a review's tag
ACKNOWLEDGED = "reviews_acknowledged"
OWN_READS = "reads_after_own_writes"  # the clients' log (invariants.own_read entries)
OWN_READS_MAX = 200_000  # per Locust process: the log's memory is bounded
OWN_READS_EVERY_S = 1.0  # after the first read following a write, one logged read per product per second
OWN_WRITES_KEPT_S = 60.0  # a write older than this is no longer followed
VERSION = re.compile(rb'"version"\s*:\s*(\d+)')  # near the start of a page: cheaper than parsing it
REPLICA_VARIANTS = ("replica", "replica_ryw")
EDGE_SLACK_S = 1.0  # behind the HTTP cache: max-age, plus this for the revalidation and the request
plugin = loadgen.setup(SPEC)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("scaling_reads")
    group.add_argument("--write-ratio", type=float, default=0.05, env_var="LOCUST_WRITE_RATIO",
                       help="share of operations that write (0..1)")
    group.add_argument("--zipf-constant", type=float, default=0.99, env_var="LOCUST_ZIPF_CONSTANT",
                       help="skew of key popularity, YCSB's constant (0 < c < 1)")
    group.add_argument("--key-space", type=int, default=0, env_var="LOCUST_KEY_SPACE",
                       help="draw keys from the N most popular products only (default: the whole catalogue)")
    group.add_argument("--read-own-writes", action="store_true", default=False, env_var="LOCUST_READ_OWN_WRITES",
                       help="read the product right after each write of it (a writer reading its own write)")


@events.init.add_listener
def _check_options(environment, **_) -> None:
    options, products = environment.parsed_options, SETTINGS.products
    problems = [text for bad, text in (
        (not 0 <= options.write_ratio <= 1, f"--write-ratio must be between 0 and 1, got {options.write_ratio}"),
        (not 0 < options.zipf_constant < 1, f"--zipf-constant must be in (0, 1), got {options.zipf_constant}"),
        (not 0 <= options.key_space <= products,
         f"--key-space must be between 0 and {products} (the catalogue), got {options.key_space}"),
        (len(tag_prefix(options)) + 32 > TAG_MAX, f"--run-id is too long for a {TAG_MAX}-character review tag"),
    ) if bad]
    if problems:
        raise SystemExit("; ".join(problems))


def tag_prefix(options) -> str:
    """Every review of a phase carries a tag `<run id>:<phase>:<unique>`, so the phase's writes are found by id."""
    return f"{options.run_id}:{options.phase}:"


def admin_headers() -> dict:
    secret = get_settings().admin_secret
    return {"Authorization": f"Bearer {secret}"} if secret else {}


_keys: dict[tuple[int, float], Zipfian] = {}


class Shopper(loadgen.Paced, FastHttpUser):
    """Closed model (default): no think time, so together the users find the maximum throughput.
    Open model (--rate R): R arrivals per second, each served by a free user."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.prefix, self.options = f"/{options.variant}", options
        if options.variant == "http_cache":  # through the shared HTTP cache, which proxies /<module>/ to the target
            self.prefix = f"{get_settings().http_cache_url}/{SPEC.id}/http_cache"
        self.name, self.reads_logged = uuid.uuid4().hex[:8], 0
        # product -> [the version this client wrote, when, when its next read is logged]
        self.written: dict[int, list] = {}
        space = (options.key_space or SETTINGS.products, options.zipf_constant)
        if space not in _keys:  # zeta over the key space is computed once per process
            _keys[space] = Zipfian(*space)
        self.keys, self.rng = _keys[space], random.Random()
        self.plugin = self.environment.harness
        self.stampede, self.write_ratio = options.scenario == "stampede", options.write_ratio
        self.read_own = options.read_own_writes
        super().on_start()

    @task
    def operate(self) -> None:  # the hot path of the load side: looked-up options are kept on the user
        if self.stampede:
            self.read(HOT_PRODUCT)
            return
        product = self.keys.next() + 1
        if self.write_ratio and self.rng.random() < self.write_ratio:
            self.write(product)
            if self.read_own:
                self.read(product)
        else:
            self.read(product)

    def read(self, product: int) -> None:
        response = self.client.get(f"{self.prefix}/products/{product}", name=PRODUCT_READ)
        if product in self.written and response.status_code == 200:
            self.log_own_read(product, response)

    def log_own_read(self, product: int, response) -> None:
        """This client changed the product's price: log the version it wrote against the one it read (the
        first read after the write, then one a second, for a minute; the load side's CPU is measured too)."""
        written, at, due = self.written[product]
        now = time.monotonic()
        if now < due or self.reads_logged >= OWN_READS_MAX:
            return
        if now - at > OWN_WRITES_KEPT_S:
            del self.written[product]
            return
        found = VERSION.search(response.content or b"")
        if found is None:
            return  # not a product page: the request's own failure is counted by Locust
        self.written[product][2] = now + OWN_READS_EVERY_S
        self.reads_logged += 1
        self.plugin.add_id(OWN_READS, invariants.own_read(self.name, self.reads_logged, product, written,
                                                          int(found.group(1)), now - at))

    def write(self, product: int) -> None:
        if self.rng.random() < 0.5:
            tag = tag_prefix(self.options) + uuid.uuid4().hex
            review = {"rating": self.rng.randint(1, 5), "body": "load test review", "tag": tag}
            response = self.client.post(f"{self.prefix}/products/{product}/reviews", json=review,
                                        name="POST /products/[id]/reviews")
            if response.status_code == 201:
                self.plugin.add_id(ACKNOWLEDGED, tag)
        else:
            response = self.client.put(f"{self.prefix}/products/{product}/price", name="PUT /products/[id]/price",
                                       json={"price_cents": self.rng.randrange(100, 100_000)})
            if response.status_code == 200 and self.options.variant != "noop":
                try:
                    self.written[product] = [int(json.loads(response.content)["version"]), time.monotonic(), 0.0]
                except (ValueError, KeyError, TypeError):
                    pass  # not the target's answer: nothing to check reads against


_background: list[gevent.Greenlet] = []


@events.test_start.add_listener
def _prepare(environment, **_) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    if options.variant in CACHED:
        response = requests.post(f"{environment.host}/{options.variant}/cache/flush", headers=admin_headers(),
                                 timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"cannot flush the {options.variant} cache: {response.status_code} {response.text[:200]}"
                               " (the target's admin routes need its admin token: HARNESS_ADMIN_TOKEN or the "
                               "state dir's admin.token)")
    if options.variant == "denormalized":  # the other variants' reviews do not keep its aggregates
        response = requests.post(f"{environment.host}/denormalized/aggregates/rebuild", headers=admin_headers(),
                                 timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"cannot rebuild the denormalized aggregates: {response.status_code} "
                               f"{response.text[:200]}")
    if options.scenario == "stampede":
        _background.append(gevent.spawn(_expire_hot_key, environment.host, options.variant))


def _expire_hot_key(host: str, variant: str) -> None:
    """What a TTL does to a hot key, on a fixed beat; killed at test stop, bounded anyway."""
    with requests.Session() as session:
        session.headers.update(admin_headers())
        for _ in range(int(3600 / EXPIRE_EVERY_S)):
            gevent.sleep(EXPIRE_EVERY_S)
            response = session.post(f"{host}/{variant}/cache/expire/{HOT_PRODUCT}", timeout=5)
            if response.status_code in (401, 403, 404):  # refused for good: say so instead of measuring nothing
                raise RuntimeError(f"the target refused to expire the hot key: {response.status_code} "
                                   f"{response.text[:200]}")


@events.test_stop.add_listener
def _stop_background(environment, **_) -> None:
    gevent.killall(_background)
    _background.clear()


# --- invariants: checks with explicit inputs (tests call them), and their registrations -------------
def check_writes(conn: psycopg.Connection, prefix: str, acknowledged: set[str]) -> list:
    """Acknowledged review tags against the tags of this phase in PostgreSQL."""
    rows = conn.execute("SELECT tag, count(*) FROM reviews WHERE starts_with(tag, %s) GROUP BY tag", (prefix,))
    return invariants.writes_by_id(acknowledged, dict(rows.fetchall()))


def check_stale_entries(cache: redis.Redis, conn: psycopg.Connection, variant: str, now: float | None = None):
    """Every cached product of the variant against its row: price and review count."""
    prefix = f"{SPEC.id}:{variant}:product:"
    keys = [k for k in cache.scan_iter(match=f"{prefix}*", count=1000) if k[len(prefix):].isdigit()]
    entries, ages, unreadable, now = {}, {}, 0, time.time() if now is None else now
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        for key, raw in zip(batch, cache.mget(batch), strict=True):
            try:
                entry = json.loads(raw) if raw is not None else None
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                unreadable += raw is not None  # None: expired between the scan and the read
                continue
            product = int(key[len(prefix):])
            entries[product], ages[product] = entry, _age(entry.get("cached_at"), now)
    rows = conn.execute("SELECT p.id, p.price_cents, (SELECT count(*) FROM reviews r WHERE r.product_id = p.id) "
                        "FROM products p WHERE p.id = ANY(%s)", (list(entries),)).fetchall()
    truth = {pid: {"price_cents": price, "review_count": count} for pid, price, count in rows}
    return invariants.stale_entries(entries, truth, ("price_cents", "review_count"), ages, unreadable=unreadable)


def _age(cached_at, now: float) -> float | None:
    if isinstance(cached_at, int | float):
        return now - cached_at
    if isinstance(cached_at, str):
        try:
            return now - datetime.fromisoformat(cached_at).timestamp()
        except ValueError:
            return None
    return None


def check_own_reads(log: set[str], variant: str):
    """The clients' logs of reads after their own writes, by product and version: behind the HTTP cache
    a read may lag the write by max-age (the cache's staleness bound), elsewhere not at all."""
    if variant == "http_cache":
        return [invariants.reads_after_own_writes(log, "edge_staleness", SETTINGS.http_max_age_s + EDGE_SLACK_S)]
    return [invariants.reads_after_own_writes(log, "stale_reads")]


def replica_position(replica: psycopg.Connection) -> int:
    return replica.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()[0]


def check_replica(primary: psycopg.Connection, replica: psycopg.Connection, timeout_s: float = 30.0):
    """Once the replica has replayed the primary's WAL up to now, every product row of the replica equals
    the primary's, by id (`compare_replica`)."""
    target = primary.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
    if not invariants.wait_until(lambda: replica_position(replica) >= target, timeout_s):
        return invariants.InvariantResult("replica_converged", 1, "== 0", False, f"the replica did not replay the "
                                          f"primary's WAL within {timeout_s:g} s")
    return compare_replica(primary, replica)


def compare_replica(primary: psycopg.Connection, replica: psycopg.Connection):
    """Every product row (price, version, kept aggregates) by id, and the reviews (count, newest id as row -1):
    a digest of each side first (computed by each server), the rows themselves only when they differ."""
    query = ("SELECT id, price_cents, version, review_count, rating_sum, rating_histogram FROM products UNION ALL "
             "SELECT -1, count(*), coalesce(max(id), 0), 0, 0, NULL FROM reviews")
    digest = f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM ({query}) t"
    (rows, ours), theirs = primary.execute(digest).fetchone(), replica.execute(digest).fetchone()[1]
    if ours == theirs:
        return invariants.InvariantResult("replica_converged", 0, "== 0", True,
                                          f"0 of {rows} rows differ (the digests of both sides are equal)")
    fields = ("price_cents", "version", "review_count", "rating_sum", "rating_histogram")

    def by_id(conn):
        return {row[0]: dict(zip(fields, row[1:], strict=True)) for row in conn.execute(query)}

    truth, copy = by_id(primary), by_id(replica)
    copy.update({pid: {} for pid in truth.keys() - copy.keys()})  # a row the replica lacks differs in every field
    return invariants.stale_entries(copy, truth, fields, name="replica_converged")


def check_aggregates(conn: psycopg.Connection):
    """Every product's kept aggregates (denormalized) against a fresh count, sum and histogram of its reviews."""
    rows = conn.execute("""
        SELECT p.id, p.review_count, f.n, p.rating_sum, f.total
        FROM products p JOIN (SELECT p2.id, count(r.id)::int AS n, coalesce(sum(r.rating), 0)::bigint AS total,
          ARRAY[count(*) FILTER (WHERE r.rating = 1), count(*) FILTER (WHERE r.rating = 2),
                count(*) FILTER (WHERE r.rating = 3), count(*) FILTER (WHERE r.rating = 4),
                count(*) FILTER (WHERE r.rating = 5)]::int[] AS histogram
          FROM products p2 LEFT JOIN reviews r ON r.product_id = p2.id GROUP BY p2.id) f ON f.id = p.id
        WHERE (p.review_count, p.rating_sum, p.rating_histogram) IS DISTINCT FROM (f.n, f.total, f.histogram)
        """).fetchall()
    total = conn.execute("SELECT count(*) FROM products").fetchone()[0]
    shown = "; ".join(f"{pid}: count {kept} != {fresh}, sum {kept_sum} != {fresh_sum}"
                      for pid, kept, fresh, kept_sum, fresh_sum in rows[:5])
    detail = f"{len(rows)} of {total} products' kept aggregates differ from fresh ones" + (f": {shown}" if rows else "")
    return invariants.InvariantResult("denormalized_aggregates", len(rows), "== 0", not rows, detail)


def store_fingerprint(conn: psycopg.Connection, target_url: str) -> tuple:
    """Changes while a write of this module may still be landing: the last review id, the last price change,
    and how many requests the target has answered. The target's own counter, not Redis's command stats:
    other modules' processes (a publisher, say) share Redis and would keep it from ever looking quiet."""
    row = conn.execute("SELECT (SELECT max(id) FROM reviews), (SELECT max(updated_at) FROM products)").fetchone()
    return (*row, answered(target_url))


def answered(target_url: str) -> float:
    text = requests.get(f"{target_url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "harness_http_responses_total" and sample.labels.get("module") == SPEC.id)


def _writes_ran(options) -> bool:
    return options.variant != "noop" and options.scenario != "stampede" and options.write_ratio > 0


def _entries_checked(options) -> bool:
    return options.variant in CACHED and _writes_ran(options)


def _prices_written(options) -> bool:
    """Price changes ran, so clients logged their reads after them."""
    return _writes_ran(options)


def _stores():
    settings = get_settings()
    return (psycopg.connect(settings.pg_dsn, connect_timeout=5, autocommit=True),
            redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=10))


def _settled_when(checked):
    """A settle callable for a check that runs when `checked(options)`: quiescent stores, or at once."""

    def settled(environment) -> bool:
        if not checked(environment.parsed_options):
            return True
        with psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True) as conn:
            return invariants.Quiescence(lambda: store_fingerprint(conn, environment.host))()

    return settled


@plugin.invariant("lost_writes", "duplicate_writes")
def _writes_kept(environment) -> list:
    options = environment.parsed_options
    if not _writes_ran(options):
        return []
    with psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True) as conn:
        return check_writes(conn, tag_prefix(options), environment.harness.ids(ACKNOWLEDGED))


@plugin.invariant("stale_entries", settle=_settled_when(_entries_checked), settle_timeout_s=30)
def _entries_fresh(environment) -> list:
    options = environment.parsed_options
    if not _entries_checked(options):
        return []
    conn, cache = _stores()
    with conn, cache:
        return [check_stale_entries(cache, conn, options.variant)]


@plugin.invariant("stale_reads", "edge_staleness")
def _reads_your_writes(environment) -> list:
    options, log = environment.parsed_options, environment.harness.ids(OWN_READS)
    if not _prices_written(options) or not log:  # no client read a product it changed: nothing to check, and
        return []                                # a claim on it is unmeasured (absent), never held
    return check_own_reads(log, options.variant)


@plugin.invariant("replica_converged", settle=_settled_when(lambda o: o.variant in REPLICA_VARIANTS and _writes_ran(o)),
                  settle_timeout_s=30)
def _replica_converged(environment) -> list:
    options = environment.parsed_options
    if options.variant not in REPLICA_VARIANTS:
        return []
    settings = get_settings()
    with (psycopg.connect(settings.pg_dsn, connect_timeout=5, autocommit=True) as primary,
          psycopg.connect(settings.pg_replica_dsn, connect_timeout=5, autocommit=True) as replica):
        return [check_replica(primary, replica)]


@plugin.invariant("denormalized_aggregates",
                  settle=_settled_when(lambda o: o.variant == "denormalized" and _writes_ran(o)), settle_timeout_s=30)
def _aggregates_fresh(environment) -> list:
    if environment.parsed_options.variant != "denormalized":
        return []
    with psycopg.connect(get_settings().pg_dsn, connect_timeout=5, autocommit=True) as conn:
        return [check_aggregates(conn)]
