"""A second open-model arrival stream (an abuser beside the good clients): declared once, started at its own
rate only when that rate is above 0, served only to the Paced users of its class, stopped with the test."""

import os
from types import SimpleNamespace

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # this pytest process must stay unpatched

import gevent  # noqa: E402
import pytest  # noqa: E402
from locust.event import Events  # noqa: E402

from harness.loadgen.plugin import Paced, setup  # noqa: E402
from harness.modules.security import SPEC  # noqa: E402


def plugin_with(rate: float, abuser_rate: float):
    plugin = setup(SPEC, events=Events())
    plugin.arrival_stream("abuser", lambda options: options.abuser_rate)
    options = SimpleNamespace(rate=rate, abuser_rate=abuser_rate, expect_workers=1, arrivals="fixed",
                              profile="steady", run_time=None, variant="token_bucket")
    plugin.environment = SimpleNamespace(parsed_options=options, runner=SimpleNamespace(state="running"),
                                         harness=plugin)
    plugin.recorder.reset(measured_start=0.0)
    return plugin


def test_a_stream_is_declared_once():
    plugin = plugin_with(0, 0)
    with pytest.raises(ValueError, match="already declared"):
        plugin.arrival_stream("abuser", lambda options: 1.0)


def test_a_stream_at_rate_zero_is_off_and_a_running_one_serves_only_its_class():
    assert plugin_with(10, 0)._start_streams() is None and plugin_with(10, 0).streams == {}
    plugin = plugin_with(0, 200)
    plugin._start_streams()
    try:
        assert set(plugin.streams) == {"abuser"} and plugin.streams["abuser"].rate == 200
        abuser, good = type("A", (Paced,), {"stream": "abuser"})(), Paced()
        abuser.environment = good.environment = plugin.environment
        taken = gevent.spawn(abuser.wait_time)
        taken.join(timeout=2)
        assert taken.successful() and abuser._intended is not None  # an arrival of the abuser's stream
        assert good.wait_time() == 0.0 and good._intended is None  # no --rate: the good class has no schedule
    finally:
        for stream in plugin.streams.values():
            stream.stop()
