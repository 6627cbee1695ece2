"""Every claim of every spec says what its threshold checks, and only that.

The rule, for every module (and the ones that come next): a claim's sentence names its variants (spelled
as the variant ids, or with spaces or hyphens: "cache-aside" is cache_aside) and contains its threshold
phrase as `Claim.threshold_phrase` writes it ("at most 0.75x", "at least 0.99", "exactly 0", "at least
1,000"); it carries no measured number ("measured", "1.0-2.2x"): measured values belong to the runs.
A claim that reads an invariant enforced for its variant restates it: it is a demonstration, with its reason.
"""

import re

import pytest

from harness.claims import Claim
from harness.modules import modules

SPECS = modules()
CLAIMS = [(module_id, claim) for module_id, spec in sorted(SPECS.items()) for claim in spec.claims]
MEASURED_RANGE = re.compile(r"\d(?:\.\d+)?\s*(?:-|–|to)\s*\d[\d.,]*\s*(?:x|s|ms|%|KiB|MiB)?\b", re.IGNORECASE)


def squashed(text: str) -> str:
    return re.sub(r"[\s_-]", "", text.lower())


def names_its_variants(claim: Claim) -> bool:
    return all(squashed(variant) in squashed(claim.sentence) for variant in claim.variants)


def says_no_measurement(sentence: str) -> bool:
    return "measured" not in sentence.lower() and not MEASURED_RANGE.search(sentence)


@pytest.mark.parametrize(("module_id", "claim"), CLAIMS, ids=[f"{m}.{c.id}" for m, c in CLAIMS])
def test_a_sentence_states_its_threshold_and_names_its_variants(module_id, claim):
    assert claim.threshold_phrase in claim.sentence, f"say {claim.threshold_phrase!r}: {claim.sentence}"
    assert names_its_variants(claim), f"name {', '.join(claim.variants)}: {claim.sentence}"
    assert says_no_measurement(claim.sentence), f"a measured value in: {claim.sentence}"


@pytest.mark.parametrize("module_id", sorted(SPECS))
def test_a_claim_that_restates_an_enforced_invariant_is_a_demonstration(module_id):
    spec = SPECS[module_id]
    invariants = {i.name: i for i in spec.invariants}
    for claim in spec.claims:
        invariant = invariants.get(claim.metric)
        if invariant is not None and claim.baseline is None and invariant.enforced(claim.variant):
            assert claim.demonstration, f"{claim.id} restates the enforced invariant {claim.metric}"
            assert claim.metric in claim.demonstration, f"{claim.id}: name the invariant it restates"


def test_the_rules_catch_what_they_name():
    loose = Claim("loose", "A cache multiplies read throughput (1.0-2.2x measured).", "rps", "cache_aside", ">=",
                  1.5, baseline="direct", scenario="ycsb")
    assert loose.threshold_phrase not in loose.sentence and not says_no_measurement(loose.sentence)
    assert not names_its_variants(loose)
    assert not says_no_measurement("fanout reaches 99% within 0.75 s (0.2-0.3 s)")
    exact = Claim("exact", "In ycsb, cache-aside answers at least 1.5x direct's requests/s on 2 shared cores.",
                  "rps", "cache_aside", ">=", 1.5, baseline="direct", scenario="ycsb")
    assert exact.threshold_phrase in exact.sentence and names_its_variants(exact)
    assert says_no_measurement(exact.sentence)


def test_the_demonstrations_are_the_ones_the_project_names():
    """Restating an enforced invariant, or holding by construction (issue 17); a change here is deliberate."""
    demonstrations = {c.id for _, c in CLAIMS if c.demonstration}
    assert {"db_offload", "fencing_safe", "crash_available", "short_poll_median", "short_poll_requests",
            "push_requests", "ws_requests", "proxy_bytes_in", "presigned_bytes_in"} <= demonstrations
    assert {f"{v}_safe_{level}" for v in ("pessimistic", "optimistic", "atomic", "redis_lock", "redis_hold")
            for level in ("high", "low")} <= demonstrations
