"""Addresses the embedded stack builds from the settings: IPv6 loopback gives valid `host:port`
strings in the Prometheus config and the command lines (checked by promtool, not by eye)."""

import json
import shutil
import subprocess

import pytest

from harness.modules import modules
from harness.settings import Settings

V6 = "::1"


def v6_settings(tmp_path) -> Settings:
    return Settings(state_dir=tmp_path, bind=V6, loadgen_metrics_host=V6, pg_host=V6, redis_host=V6,
                    prometheus_host=V6, target_host=V6)


def test_ipv6_prometheus_config_has_bracketed_targets_and_passes_promtool(tmp_path):
    from harness.stack import prometheus_config

    settings = v6_settings(tmp_path)
    config = prometheus_config(settings)
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets and all(t.startswith("[::1]:") for t in targets), targets
    assert f"[::1]:{settings.prometheus_port}" in targets
    for spec in modules().values():
        assert f"[::1]:{settings.module_port(spec.port)}" in targets
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install it with `apt-get install prometheus` (it ships promtool)")
    done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ipv6_command_lines(tmp_path):
    from harness.stack import SERVICES

    settings = v6_settings(tmp_path)
    prometheus = SERVICES["prometheus"].command(settings, tmp_path / "prometheus")
    assert f"--web.listen-address=[::1]:{settings.prometheus_port}" in prometheus
    assert "--web.enable-lifecycle" not in prometheus, "no HTTP API to stop or reload Prometheus"
    redis = SERVICES["redis"].command(settings, tmp_path / "redis")
    assert redis[redis.index("--bind") + 1] == V6
    for spec in modules().values():
        target = SERVICES[spec.id].command(settings, tmp_path / spec.id)
        assert target[target.index("--host") + 1] == V6
        assert target[target.index("--port") + 1] == str(settings.module_port(spec.port))
    assert settings.redis_url == f"redis://[::1]:{settings.redis_port}/0"
    assert settings.prometheus_url == f"http://[::1]:{settings.prometheus_port}"


def test_ipv6_postgres_listens_on_the_address_alone(tmp_path):
    from harness import services_pg

    command = services_pg.command(v6_settings(tmp_path), tmp_path / "postgres")
    assert "listen_addresses=::1" in command


def test_a_bind_address_off_loopback_is_refused():
    with pytest.raises(ValueError, match="must be a loopback address"):
        Settings(bind="0.0.0.0")


def test_a_project_dir_without_the_modules_files_is_a_clear_error(tmp_path):
    from harness.stack import SERVICES, StackError, require_project_file

    settings = Settings(project_dir=tmp_path, state_dir=tmp_path / "state")
    with pytest.raises(StackError, match=r"locustfiles/scaling_reads.py not found: .*HARNESS_PROJECT_DIR"):
        require_project_file(settings, "locustfiles/scaling_reads.py")
    for spec in modules().values():
        with pytest.raises(StackError, match=f"targets/{spec.id}/__init__.py not found"):
            SERVICES[spec.id].command(settings, tmp_path / spec.id)
