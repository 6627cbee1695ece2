"""Security & Access: what each way of knowing the caller costs and when it can be revoked; whether a rate
limiter keeps good clients whole while an abuser hammers the API.

The module's one declaration (docs/adding-a-module.md): the locustfile and the CLI read it;
`targets/security/` serves the same variants under `/<variant>/...`. Four authentication variants (an
opaque session looked up in Redis, HS256 and EdDSA JWTs verified locally, HS256 plus a Redis denylist) and
three rate limiters in Redis keyed by API key (fixed window, sliding window counter, token bucket).

Attacks are invariants, run against the variant after each of its phases (locustfiles/security_checks.py):
forged credentials (tampered signature, alg none, algorithm confusion, expired, a guessed session id), a
credential used after logout, and a plain user on the admin route. Plain JWT's acceptance after logout is
the finding, not a failure.
"""

from __future__ import annotations

from harness.claims import Claim
from harness.spec import InvariantSpec, Load, ModuleSpec, Scenario, ServerMetric, Variant
from targets.security.settings import Settings

AUTH = ("session", "jwt", "jwt_eddsa", "jwt_revocable")
LIMITERS = ("fixed_window", "sliding_window", "token_bucket")
REVOCABLE = ("session", "jwt_revocable")
GOOD = "GET /resource (good)"  # the good clients' request: the claims' latency
ABUSER = "GET /resource (abuser)"  # admitted or refused (429), both expected
EDGE = "GET /resource (boundary)"  # the boundary prober's, admitted or refused (429)
SETTINGS = Settings()
RATE = SETTINGS.rate_per_s  # requests/s per key every limiter enforces
GOOD_RATE, GOOD_KEYS = 20.0, 8  # 2.5 requests/s per good key: half the limit
ABUSER_RATE = 10 * RATE  # the abuser at 10x its limit
P99_UNDER_ABUSE = 8.0  # good clients' p99 with the abuser / without; see docs/workshops/security.md


def _decisions(matchers: str) -> str:
    return f"harness_security_limiter_decisions_total{{{matchers}}}"


def _limited(name: str, description: str, users: int, duration_s: float, warmup_s: float, **extra) -> Scenario:
    return Scenario(name=name, description=description, variants=LIMITERS, duration_s=duration_s, warmup_s=warmup_s,
                    loads=(Load(name="good", rate=GOOD_RATE, users=users),), **extra)


SPEC = ModuleSpec(
    id="security",
    title="Security & Access",
    port=18108,
    services=("redis",),
    settings=Settings,
    repeat=1,
    variants=(
        Variant(name="session", sentence="an opaque 256-bit session id in a cookie, looked up in Redis on every "
                "request; logout deletes it"),
        Variant(name="jwt", sentence="an HS256 JWT verified locally with a key loaded once; nothing to look up, "
                "nothing to revoke: it is valid until it expires"),
        Variant(name="jwt_eddsa", sentence="the same with EdDSA (Ed25519): a public key verifies, only the "
                "target's private key signs"),
        Variant(name="jwt_revocable", sentence="an HS256 JWT plus a denylist of revoked token ids in Redis, "
                "checked on every request"),
        Variant(name="fixed_window", sentence="per API key, a counter per window opened by the first hit "
                "(`limits`, INCR + EXPIRE in Lua)"),
        Variant(name="sliding_window", sentence="per API key, the previous window's count weighted by its share "
                "of the trailing window plus the current count (`limits`' sliding window counter)"),
        Variant(name="token_bucket", sentence="per API key, a bucket of `limit` tokens refilled at limit/window "
                "per second, in one Lua script on Redis's clock"),
    ),
    scenarios=(
        Scenario(name="auth_cost", description="saturation: 24 users, closed model, no think time, each logged "
                 "in once before the load (tokens minted up front)", variants=AUTH, users=24, duration_s=6,
                 warmup_s=2),
        _limited("calm", f"good clients only: {GOOD_RATE:g} requests/s over {GOOD_KEYS} API keys (half the limit "
                 "each), open model", users=20, duration_s=6, warmup_s=1),
        _limited("abuse", f"the same good clients, plus one abusive API key at {ABUSER_RATE:g} requests/s (10x "
                 "its limit), both open model; 20 users serve the good arrivals, 20 the abuser's", users=40,
                 duration_s=8, warmup_s=2, options=("--abuser-rate", f"{ABUSER_RATE:g}")),
        Scenario(name="boundary", description="one client aligned on the window edge: a burst of limit-1 just "
                 "before it and a burst of limit just after, then idle; the target counts the most admitted in "
                 "any trailing window", variants=LIMITERS, users=1, duration_s=7, warmup_s=0),
    ),
    main_scenario="abuse",
    latency_of=GOOD,
    server_metrics=(
        ServerMetric(name="auth_us", label="auth step wall us/request (queueing included)", kind="ratio",
                     numerator="harness_security_auth_microseconds_total",
                     denominator="harness_security_auth_checks_total"),
        ServerMetric(name="verify_cpu_us", label="local verify CPU us/request", kind="ratio",
                     numerator="harness_security_verify_cpu_microseconds_total",
                     denominator="harness_security_auth_checks_total"),
        ServerMetric(name="verify_cpu_median_us", label="local verify CPU us, median", kind="gauge", reduce="last",
                     numerator="harness_security_verify_cpu_median_us"),
        ServerMetric(name="abuser_admitted_per_s", label="abuser admitted/s", kind="ratio",
                     numerator=_decisions('client="abuser",decision="admitted"'),
                     denominator="harness_security_uptime_seconds_total"),
        ServerMetric(name="good_refused_ratio", label="good clients refused", kind="ratio", format="percent",
                     numerator=_decisions('client="good",decision!="admitted"'),
                     denominator=_decisions('client="good"')),
        ServerMetric(name="peak_window_ratio", label="most admitted in a trailing window / limit", kind="gauge",
                     reduce="last", numerator="harness_security_peak_window_ratio"),
    ),
    invariants=(
        InvariantSpec(name="forged_accepted", sentence="forged credentials accepted: a tampered signature, alg "
                      "none, an HS256 token signed with the EdDSA public key, an expired token, a guessed or "
                      "tampered session id (each expects 401)", enforced_for=AUTH),
        InvariantSpec(name="revoked_accepted", sentence="requests accepted with a credential after its logout "
                      "(each expects 401)", enforced_for=REVOCABLE),
        InvariantSpec(name="escalation_accepted", sentence="a plain user's requests to the admin route accepted "
                      "(each expects 403)", enforced_for=AUTH),
    ),
    columns=("rps", "p50_ms", "p99_ms", "failures", "cpu_ms_per_request", "auth_us", "verify_cpu_us",
             "verify_cpu_median_us", "good_refused_ratio", "abuser_admitted_per_s", "peak_window_ratio",
             "forged_accepted", "revoked_accepted", "escalation_accepted", "target_rate", "dropped",
             "load_cpu_us_per_request"),
    compare=("rps", "p99_ms", "cpu_ms_per_request", "auth_us", "verify_cpu_us", "abuser_admitted_per_s",
             "peak_window_ratio"),
    progress=("verify_cpu_median_us", "abuser_admitted_per_s"),
    bar_plots=("verify_cpu_us", "cpu_ms_per_request", "p99_ms"),
    # Thresholds from measured runs on the shared 2-core machine, with margin (docs/workshops/security.md).
    claims=(
        Claim("jwt_auth_step_faster", "In auth_cost, jwt's auth step takes at most 0.2x session's wall time per "
              "request: a local verify never waits, a Redis look-up waits for the network and the event loop.",
              "auth_us", "jwt", "<=", 0.2, baseline="session", scenario="auth_cost"),
        Claim("eddsa_dearer", "In auth_cost, jwt_eddsa's median local verify costs at least 2x jwt's CPU: an "
              "Ed25519 verification costs more than an HMAC.", "verify_cpu_median_us", "jwt_eddsa", ">=", 2,
              baseline="jwt", scenario="auth_cost"),
        Claim("denylist_costs", "In auth_cost, jwt_revocable's auth step takes at least 10x jwt's wall time per "
              "request: revocability brings back a Redis look-up on every request.", "auth_us", "jwt_revocable",
              ">=", 10, baseline="jwt", scenario="auth_cost"),
        Claim("jwt_outlives_logout", "In auth_cost, jwt accepts more than 0 requests with a token after its "
              "logout: a plain JWT stays valid until it expires.", "revoked_accepted", "jwt", ">", 0,
              scenario="auth_cost"),
        Claim("session_revokes", "In auth_cost, session accepts exactly 0 requests after logout.",
              "revoked_accepted", "session", "==", 0, scenario="auth_cost",
              demonstration="restates the invariant revoked_accepted, enforced for session"),
        Claim("denylist_revokes", "In auth_cost, jwt_revocable accepts exactly 0 requests after logout.",
              "revoked_accepted", "jwt_revocable", "==", 0, scenario="auth_cost",
              demonstration="restates the invariant revoked_accepted, enforced for jwt_revocable"),
        Claim("eddsa_refuses_forgeries", "In auth_cost, jwt_eddsa accepts exactly 0 forged tokens (alg none, "
              "algorithm confusion, tampered, expired).", "forged_accepted", "jwt_eddsa", "==", 0,
              scenario="auth_cost", demonstration="restates the invariant forged_accepted, enforced for jwt_eddsa"),
        *(Claim(f"abuser_capped_{v}", f"In abuse, {v} admits the abuser at most {1.1 * RATE:g} requests/s (1.1x "
                f"its limit of {RATE:g}/s).", "abuser_admitted_per_s", v, "<=", 1.1 * RATE, scenario="abuse")
          for v in LIMITERS),
        *(Claim(f"abuser_served_{v}", f"In abuse, {v} still admits the abuser at least {0.8 * RATE:g} requests/s "
                "(0.8x its limit): a limiter caps a client, it does not starve it.", "abuser_admitted_per_s", v,
                ">=", 0.8 * RATE, scenario="abuse")
          for v in ("sliding_window", "token_bucket")),
        *(Claim(f"good_whole_{v}", f"In abuse, {v} refuses at most 0.01 of the good clients' requests while the "
                "abuser hammers.", "good_refused_ratio", v, "<=", 0.01, scenario="abuse")
          for v in LIMITERS),
        *(Claim(f"good_p99_{v}", f"In abuse, {v}'s good clients' p99 latency is at most {P99_UNDER_ABUSE:g}x their "
                "p99 in calm: the abuser's refused requests barely slow the good ones.", "p99_ms", v, "<=",
                P99_UNDER_ABUSE, baseline=v, baseline_scenario="calm", scenario="abuse")
          for v in LIMITERS),
        Claim("fixed_window_doubles", "In boundary, fixed_window admits at least 1.7x its limit in some trailing "
              "window: a client aligned on the window edge gets about twice the limit.", "peak_window_ratio",
              "fixed_window", ">=", 1.7, scenario="boundary"),
        Claim("sliding_window_holds", "In boundary, sliding_window admits at most 1.25x its limit in any trailing "
              "window.", "peak_window_ratio", "sliding_window", "<=", 1.25, scenario="boundary"),
        Claim("token_bucket_holds", "In boundary, token_bucket admits at most 1.3x its limit in any trailing "
              "window: the burst it allows plus what refills.", "peak_window_ratio", "token_bucket", "<=", 1.3,
              scenario="boundary"),
    ),
)
