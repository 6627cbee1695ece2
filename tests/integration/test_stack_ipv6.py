"""HARNESS_BIND=::1: the stores and Prometheus start on the IPv6 loopback and answer there."""

import socket

import pytest
import requests

from harness.settings import Settings
from harness.stack import Stack, StackError

pytestmark = pytest.mark.integration


def free_v6_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


def test_redis_and_prometheus_on_ipv6_loopback(tmp_path):
    v6 = "::1"
    settings = Settings(state_dir=tmp_path / "state", bind=v6, redis_host=v6, prometheus_host=v6,
                        redis_port=free_v6_port(), prometheus_port=free_v6_port())
    stack = Stack(settings)
    try:
        assert stack.up(["redis", "prometheus"]) == ["redis", "prometheus"]
        assert all(row["healthy"] for row in stack.status(["redis", "prometheus"]))
        build = requests.get(f"{settings.prometheus_url}/api/v1/status/buildinfo", timeout=5)
        assert build.json()["status"] == "success"
        with pytest.raises(requests.ConnectionError):  # nothing on the IPv4 loopback
            requests.get(f"http://127.0.0.1:{settings.prometheus_port}/-/ready", timeout=5)
    finally:
        stack.down()


def test_a_bind_address_its_clients_would_not_find_is_refused_before_starting(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", bind="::1", redis_port=free_v6_port())
    with pytest.raises(StackError, match=r"HARNESS_BIND=::1, but its clients look for it at "
                                         r"HARNESS_REDIS_HOST=127.0.0.1; set HARNESS_REDIS_HOST=::1 too"):
        Stack(settings).up(["redis"])
    assert Stack(settings).state == {}, "nothing was started"
