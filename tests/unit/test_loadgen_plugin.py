"""The Locust-facing parts of the plugin, in process: options from the spec, safe bind defaults,
scenario defaults, one plugin per event bus, and the request path into the results document."""

import os
import time
from types import SimpleNamespace

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # this pytest process must stay unpatched

import pytest  # noqa: E402
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from harness.loadgen import merge, options  # noqa: E402
from harness.loadgen.plugin import failure_reason, setup  # noqa: E402
from harness.modules.scaling_reads import SPEC  # noqa: E402


def parser():
    p = get_empty_argument_parser()
    setup_parser_arguments(p)
    options.add_options(p, SPEC)
    # the locustfile's own workload options, which scenario options name
    p.add_argument("--write-ratio", type=float, default=0.05)
    p.add_argument("--key-space", type=int, default=0)
    return p


def parse(*argv: str):
    p = parser()
    parsed = p.parse_args(args=["-f", "x.py", *argv])
    options.apply_scenario(p, parsed, SPEC, argv=["-f", "x.py", *argv])
    return parsed, options.resolve(parsed, SPEC)


def test_web_ui_and_master_bind_to_loopback_unless_asked(monkeypatch):
    monkeypatch.delenv("LOCUST_WEB_HOST", raising=False)
    monkeypatch.delenv("LOCUST_MASTER_BIND_HOST", raising=False)
    parsed, _ = parse()
    assert parsed.web_host == "127.0.0.1" and parsed.master_bind_host == "127.0.0.1"
    parsed, _ = parse("--web-host", "0.0.0.0", "--master-bind-host", "*")
    assert parsed.web_host == "0.0.0.0" and parsed.master_bind_host == "*"
    monkeypatch.setenv("LOCUST_WEB_HOST", "::1")
    assert parse()[0].web_host == "::1"


def test_choices_come_from_the_spec(capsys):
    p = parser()
    for flag, choices in (("--variant", SPEC.variant_names), ("--scenario", [s.name for s in SPEC.scenarios])):
        action = next(a for a in p._actions if flag in a.option_strings)
        assert list(action.choices) == list(choices)
    load = next(a for a in p._actions if "--load" in a.option_strings)
    assert set(load.choices) == {"open", "closed"}
    with pytest.raises(SystemExit):
        p.parse_args(args=["--variant", "memcached"])
    assert "invalid choice: 'memcached'" in capsys.readouterr().err


def test_defaults_follow_the_scenario_and_bad_combinations_are_refused():
    parsed, problems = parse()
    assert problems == [] and (parsed.scenario, parsed.variant, parsed.profile) == ("ycsb", "direct", "steady")
    assert parsed.run_id.startswith("manual-")  # write ids of a plain run stay unique across runs
    parsed, problems = parse("--scenario", "stampede")
    assert problems == [] and parsed.variant == "cache_aside"
    _, problems = parse("--scenario", "stampede", "--variant", "direct")
    assert problems == ["scenario stampede runs the variants cache_aside, cache_aside_singleflight; "
                        "got --variant direct"]
    _, problems = parse("--scenario", "ycsb", "--load", "open", "--rate", "-1", "--profile", "wobble")
    assert len(problems) == 3 and any("has the loads (none)" in p for p in problems)


def test_a_scenario_supplies_its_settings_and_the_command_line_wins(monkeypatch):
    monkeypatch.setenv("LOCUST_RATE", "75")  # an option's variable wins over the scenario too
    parsed, _ = parse("--scenario", "stall", "--load", "open")
    assert (parsed.rate, parsed.num_users) == (75.0, 600)
    monkeypatch.delenv("LOCUST_RATE")
    parsed, _ = parse("--scenario", "consistency", "--variant", "cache_aside")
    assert (parsed.write_ratio, parsed.key_space, parsed.num_users, parsed.warmup) == (0.3, 1000, 32, 2.0)
    parsed, _ = parse("--scenario", "consistency", "--variant", "cache_aside", "--write-ratio", "0.1", "-u", "4")
    assert (parsed.write_ratio, parsed.key_space, parsed.num_users) == (0.1, 1000, 4)
    parsed, _ = parse("--scenario", "stall", "--load", "open")
    assert (parsed.variant, parsed.load, parsed.rate, parsed.num_users) == ("noop", "open", 200.0, 600)
    parsed, _ = parse("--scenario", "stall")
    assert (parsed.load, parsed.rate, parsed.num_users) == ("closed", 0.0, 8)
    parsed, _ = parse("--scenario", "ycsb", "--rate", "50")
    assert (parsed.rate, parsed.write_ratio, parsed.load) == (50.0, 0.05, "")


def test_one_plugin_per_event_bus():
    events = Events()
    plugin = setup(SPEC, events=events)
    with pytest.raises(RuntimeError, match="already called in this process"):
        setup(SPEC, events=events)
    assert setup(SPEC, events=Events()) is not plugin  # another bus (another Environment) gets its own
    with pytest.raises(ValueError, match="not declared"):
        plugin.invariant("rows_lost")


def test_failure_reason_is_the_status_or_the_exception_class():
    assert failure_reason(Exception("x"), SimpleNamespace(status_code=503)) == "503"
    assert failure_reason(ConnectionRefusedError(), SimpleNamespace(status_code=0)) == "ConnectionRefusedError"
    assert failure_reason(ValueError("bad body"), SimpleNamespace(status_code=200)) == "ValueError"
    assert failure_reason(TimeoutError(), None) == "TimeoutError"


def test_requests_fired_on_the_bus_reach_the_results_document():
    events = Events()
    plugin = setup(SPEC, events=events)
    parsed, _ = parse("--variant", "cache_aside")
    plugin.environment = Environment(events=events, parsed_options=parsed)
    plugin.observer = SimpleNamespace(observe=lambda *args: None)
    plugin.recorder.reset(measured_start=0.0)
    now = time.time()
    for status, exception in ((200, None), (200, None), (500, Exception("500")), (0, ConnectionResetError())):
        events.request.fire(request_type="GET", name="GET /products/[id]", response_time=2.0, response_length=0,
                            exception=exception, context={}, start_time=now,
                            response=SimpleNamespace(status_code=status), url="/x")
    plugin.tally("arrivals", 4)
    plugin.add_id("reviews_acknowledged", "t1")
    doc = merge.document(plugin.recorder, {"variant": "cache_aside", "rate": 50.0}, [], 0.004, None)
    total = doc["requests"]["Aggregated"]
    assert (total["count"], total["failures"]) == (2, 2)
    assert total["errors"] == {"500": 1, "ConnectionResetError": 1}
    assert doc["load_cpu_us_per_request"] == pytest.approx(1000.0)  # per request sent, failures included
    assert (doc["model"], doc["arrivals"], doc["dropped"]) == ("open", 4, 0)
    assert plugin.ids("reviews_acknowledged") == {"t1"}
    closed = merge.document(plugin.recorder, {"rate": None}, [], 0.0, None)
    assert (closed["model"], closed["arrivals"], closed["dropped"]) == ("closed", None, None)


def test_results_are_written_atomically(tmp_path):
    target = tmp_path / "deep" / "started.json"
    merge.write_json(target, {"start": 1.0, "measured_start": 6.0})
    assert target.read_text().startswith("{") and list(target.parent.iterdir()) == [target]


def test_knob_options_are_checked_when_locust_starts():
    parsed, problems = parse("--knob", "scaling_reads.x=2", "--knob", "scaling_reads.x=3")
    assert problems == [] and parsed.knob == ["scaling_reads.x=2", "scaling_reads.x=3"]
    _, problems = parse("--knob", "redis.x=1")
    assert problems == ["--knob redis.x=1: 'redis' serves no knobs; known: scaling_reads"]
