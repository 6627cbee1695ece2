"""The attack checks' parts, without services: the forged tokens are the real attacks (an algorithm-confusion
token verifies under a verifier that trusts the token's alg), the tally counts an accepted attack, and zero
attempts is a failure, never a pass; the boundary's trailing-window peak."""

import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from locustfiles.security_checks import Tally, _b64, alg_confusion, alg_none, tampered
from targets.security.auth import Refused, Tokens
from targets.security.metrics import PeakWindow


def public_pem() -> bytes:
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_algorithm_confusion_token_is_a_valid_hmac_under_the_public_key():
    pem = public_pem()
    token = alg_confusion(pem)
    head, body, signature = token.split(".")
    assert json.loads(jwt.utils.base64url_decode(head)) == {"alg": "HS256", "typ": "JWT"}
    assert _b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()) == signature  # a naive verifier
    assert jwt.get_unverified_header(alg_none())["alg"] == "none"


@pytest.mark.parametrize("algorithm", ["HS256", "EdDSA"])
def test_the_variants_refuse_each_forgery(algorithm):
    tokens = Tokens(algorithm)
    genuine = jwt.encode({"sub": "u", "role": "user", "jti": "j", "exp": 4_000_000_000}, tokens.signing_key,
                         algorithm=algorithm)
    assert tokens.decode(genuine)["sub"] == "u"  # the control
    for forged in (tampered(genuine), alg_none(), alg_confusion(tokens.public_pem or public_pem())):
        with pytest.raises(Refused):
            tokens.decode(forged)
    expired = jwt.encode({"sub": "u", "role": "user", "jti": "j", "exp": 1}, tokens.signing_key, algorithm=algorithm)
    with pytest.raises(Refused, match="expired"):
        tokens.decode(expired)


def test_a_tally_counts_what_was_not_the_expected_refusal_and_zero_attempts_fails():
    tally = Tally(401)
    for status in (401, 401, 200, 403):
        tally.record("alg_none", status)
    result = tally.result("forged_accepted")
    assert (result.value, result.passed) == (2, False) and "alg_none 2/4" in result.detail
    empty = Tally(401).result("forged_accepted")
    assert not empty.passed and "not measured" in empty.detail


def test_peak_window_counts_the_most_admitted_in_any_trailing_window():
    peaks = PeakWindow(window_s=2, limit=10)
    for t in [0.0] + [1.7 + i * 0.01 for i in range(9)] + [2.05 + i * 0.01 for i in range(10)]:
        peaks.admitted("fixed_window", "edge-a", now=t)
    assert peaks.peaks["fixed_window"] == 19  # 9 before the edge + 10 after, within 2 s
    peaks.admitted("fixed_window", "edge-b", now=10.0)  # a new key starts over
    assert peaks.peaks["fixed_window"] == 1


def test_the_local_verify_reports_its_cpu_and_eddsa_costs_more_than_hmac():
    import asyncio

    spent = {"HS256": [], "EdDSA": []}
    for algorithm in spent:
        tokens = Tokens(algorithm, on_verify=spent[algorithm].append)
        token = jwt.encode({"sub": "u", "role": "user", "jti": "j", "exp": 4_000_000_000}, tokens.signing_key,
                           algorithm=algorithm)

        async def verify_many(tokens=tokens, token=token):
            for _ in range(200):
                await tokens.check(token)

        asyncio.run(verify_many())
    assert all(len(v) == 200 and min(v) >= 0 for v in spent.values())
    assert sorted(spent["EdDSA"])[100] > sorted(spent["HS256"])[100]  # medians of CPU time, not of wall time


def test_the_verify_median_ignores_a_rare_pause_that_the_mean_does_not():
    from targets.security.metrics import VerifyCpu

    verify = VerifyCpu(keep=5)
    observe = verify.record("jwt-test")
    for cpu_us in (10, 12, 11, 9, 5000, 13):  # one GC pause; the oldest sample falls out
        observe(cpu_us)
    (family,) = list(verify.collect())
    assert [s.value for s in family.samples if s.labels["variant"] == "jwt-test"] == [12]
