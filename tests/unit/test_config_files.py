"""The files for Docker users and Grafana: compose.yaml, the Prometheus config, Grafana provisioning and
the dashboards. Checked with the real validators (the Compose Specification schema, promtool) and
against each other and the code, so a renamed metric, service or datasource uid breaks a test here
instead of an empty panel later.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
PROMETHEUS_YML = ROOT / "dashboards" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "dashboards" / "grafana" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = ROOT / "dashboards" / "grafana" / "dashboards" / "provider.yml"
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE_UID = "harness-prometheus"
JOB_NAMES = {"targets", "loadgen", "prometheus"}

# The documented server metric names: every `harness_*` name in the docstring of a target file (the
# common ones in targets/common.py, a module's own in targets/<id>/metrics.py); the load side's are the
# Locust exporter's. A dashboard may only query these.
DOCUMENTED_NAME = re.compile(r"^\s+(harness_[a-z_]+)\s+(?:counter|histogram|gauge)\b", re.MULTILINE)


def _documented_server_metrics() -> dict[str, Path]:
    documented = {}
    for path in sorted((ROOT / "targets").rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        documented.update({name: path for name in DOCUMENTED_NAME.findall(docstring)})
    return documented


SERVER_METRICS = set(_documented_server_metrics())
PROCESS_METRICS = {"process_cpu_seconds_total"}
LOAD_METRICS = {
    "harness_load_requests_total",
    "harness_load_failures_total",
    "harness_load_request_duration_seconds",
    "harness_load_users",
    "harness_load_dropped_arrivals_total",
    "harness_phase",
    "harness_fault",
}
METRIC_NAME = re.compile(r"\b(?:harness|process)_[a-z_]+\b")
HARNESS_SELECTOR = re.compile(r"\b(harness_[a-z_]+)\b(\{[^}]*\})?")
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):\?[^}]+\}$")
PROMTOOL_MISSING = "promtool not found: install it with `apt-get install prometheus` (it ships promtool)"


def _load_grafana_helper():
    # Loaded by path, so this works however pytest was started (tests/ is not a package).
    spec = importlib.util.spec_from_file_location("_harness_tests_grafana", ROOT / "tests" / "grafana.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


panel_queries = _load_grafana_helper().panel_queries


# --- helpers --------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    found = compose().get("services") or {}
    assert found, "compose.yaml defines no services"
    return found


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def volume_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(type, source, container path) of each of a service's volumes, short or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((volume.get("type", "volume"), str(volume.get("source", "")), volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail(PROMTOOL_MISSING)
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)


def prometheus_yml() -> dict:
    return yaml.safe_load(PROMETHEUS_YML.read_text())


def dashboard_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels") or [])


def all_queries() -> list[tuple[Path, str, str]]:
    queries = [(path, title, expr) for path in DASHBOARDS for title, expr in panel_queries(path)]
    assert queries, "no PromQL found in dashboards/*.json"
    return queries


# --- compose.yaml ---------------------------------------------------------------------------------


def test_compose_matches_the_compose_specification():
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "version" not in compose(), "the Compose Specification has no top-level `version:`"


def test_every_service_has_a_healthcheck():
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check, f"service {name} has no healthcheck"
        assert not check.get("disable"), f"service {name} disables its healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"service {name} has an empty healthcheck test"


def test_depends_on_waits_for_healthy_defined_services():
    all_services = services()
    dependencies = 0
    for name, service in all_services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
        for dependency, spec in depends_on.items():
            dependencies += 1
            assert dependency in all_services, f"{name} depends on undefined service {dependency}"
            assert (spec or {}).get("condition") == "service_healthy", (
                f"{name} -> {dependency}: use condition: service_healthy"
            )
            assert all_services[dependency].get("healthcheck"), (
                f"{name} waits for {dependency} to be healthy, but {dependency} has no healthcheck"
            )
    assert dependencies, "no service depends on another: the start order is not enforced"


def test_images_are_pinned_or_built():
    for name, service in services().items():
        if "build" in service:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file(), f"{name} builds {context} without a Dockerfile"
            continue
        image = service.get("image", "")
        assert image, f"service {name} has neither image nor build"
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image} has no tag"
        # a version (at least major.minor), or a dated release tag such as MinIO's RELEASE.2024-11-07T...
        assert tag != "latest" and re.search(r"\d+\.\d+|\d{4}-\d{2}-\d{2}", tag), (
            f"{name}: image {image} is not pinned to a version (at least major.minor)"
        )


def test_published_ports_bind_to_loopback_only():
    published = 0
    for name, service in services().items():
        for port in service.get("ports") or []:
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: port {port} is not bound to 127.0.0.1"
            else:
                assert str(port).startswith("127.0.0.1:") and str(port).count(":") == 2, (
                    f"{name}: port {port!r} must be published as 127.0.0.1:HOST:CONTAINER"
                )
    assert published, "compose.yaml publishes no port"


def test_same_host_ports_as_the_embedded_stack():
    from harness.modules import modules
    from harness.settings import Settings

    settings = Settings(port_offset=0)
    expected = {
        "postgres": settings.pg_port,
        "redis": settings.redis_port,
        "prometheus": settings.prometheus_port,
        "minio": settings.s3_port,
        **{module.id: module.port for module in modules().values()},
        "locust-master": settings.loadgen_metrics_port,
    }
    all_services = services()
    for name, port in expected.items():
        assert name in all_services, f"compose.yaml has no service {name}"
        host_ports = {int(str(p).split(":")[1]) for p in all_services[name].get("ports") or []}
        assert port in host_ports, (
            f"{name} must publish host port {port} (the embedded stack's): {host_ports}"
        )


def test_passwords_come_from_required_variables():
    all_services = services()
    required = {
        ("postgres", "POSTGRES_PASSWORD"): "POSTGRES_PASSWORD",
        ("grafana", "GF_SECURITY_ADMIN_PASSWORD"): "GRAFANA_ADMIN_PASSWORD",
    }
    for (service, key), variable in required.items():
        value = environment(all_services[service]).get(key, "")
        match = REQUIRED_VARIABLE.match(value)
        assert match and match["name"] == variable, (
            f"{service}.{key} must be ${{{variable}:?message}} (required, no default), got {value!r}"
        )
    # No literal password and no `${X:-default}` for a secret anywhere in the file.
    for name, service in all_services.items():
        for key, value in environment(service).items():
            if "PASSWORD" in key:
                assert REQUIRED_VARIABLE.match(value), f"{name}.{key} is not a required variable: {value!r}"
            for dsn in re.findall(r"\w+://[^\s]*@", value):
                password = dsn.split("://", 1)[1].rsplit("@", 1)[0].partition(":")[2]
                assert REQUIRED_VARIABLE.match(password), f"{name}.{key}: the DSN's password is {password!r}"
    # `$${X}` is an escaped dollar (a variable of the container's shell), not an interpolation.
    for interpolation in re.findall(r"(?<!\$)\$\{[^}]*\}", COMPOSE.read_text()):
        if re.search("PASSWORD|SECRET|TOKEN", interpolation):
            assert REQUIRED_VARIABLE.match(interpolation), f"{interpolation}: make it required, ${{X:?...}}"


def test_mounted_files_and_named_volumes_exist():
    spec = compose()
    declared_volumes = set(spec.get("volumes") or {})
    binds = 0
    for name, service in services().items():
        for kind, source, target in volume_mounts(service):
            if kind == "bind":
                binds += 1
                assert source.startswith("./"), f"{name}: bind mount {source} must be a path in the repo"
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            elif kind == "volume" and source:
                assert source in declared_volumes, f"{name} uses volume {source}, not declared at top level"
            assert target.startswith("/"), f"{name}: container path {target} is not absolute"
    for section in ("configs", "secrets"):
        for entry, item in (spec.get(section) or {}).items():
            if "file" in item:
                assert (ROOT / item["file"]).exists(), f"{section}.{entry}: {item['file']} does not exist"
    assert binds, "no service mounts a file from the repo"


def test_prometheus_service_reads_the_mounted_config():
    prometheus = services()["prometheus"]
    mounted = {target: source for _, source, target in volume_mounts(prometheus)}
    flags = dict(arg.split("=", 1) for arg in prometheus.get("command") or [] if "=" in arg)
    config_path = flags.get("--config.file", "/etc/prometheus/prometheus.yml")
    assert (ROOT / mounted.get(config_path, "<not mounted>")).resolve() == PROMETHEUS_YML, (
        f"prometheus reads {config_path}, which is not ./dashboards/prometheus/prometheus.yml"
    )
    assert "--web.enable-lifecycle" not in (prometheus.get("command") or []), (
        "no HTTP API that stops or reloads Prometheus"
    )


def test_grafana_provisioning_is_mounted_where_grafana_reads_it():
    grafana = services()["grafana"]
    mounted = {(ROOT / source).resolve(): target for kind, source, target in volume_mounts(grafana)}
    assert mounted.get(GRAFANA_DATASOURCES.parent) == "/etc/grafana/provisioning/datasources"
    assert mounted.get(GRAFANA_PROVIDER.parent) == "/etc/grafana/provisioning/dashboards"
    providers = yaml.safe_load(GRAFANA_PROVIDER.read_text())["providers"]
    paths = {provider["options"]["path"].rstrip("/") for provider in providers if provider["type"] == "file"}
    dashboards_mount = mounted.get((ROOT / "dashboards").resolve())
    assert dashboards_mount and dashboards_mount.rstrip("/") in paths, (
        f"the file provider reads {paths}, but compose mounts ./dashboards at {dashboards_mount}"
    )


def test_one_target_service_per_module_from_the_one_image():
    from harness.modules import modules

    all_services = services()
    for module in modules().values():
        target = all_services.get(module.id)
        assert target, f"compose.yaml has no target service for module {module.id}"
        env = environment(target)
        assert env.get("HARNESS_MODULE") == module.id and env.get("HARNESS_TARGET_PORT") == str(module.port)
        assert "command" not in target, f"{module.id}: the image's command serves targets.$HARNESS_MODULE"
        assert target.get("image") == "pattern-harness:local" and "build" in target
    cmd = re.search(r"^CMD (.*)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)[1]
    assert "targets.${HARNESS_MODULE" in cmd and "$HARNESS_TARGET_PORT" in cmd, cmd


def test_locust_takes_its_locustfile_and_targets_from_the_environment():
    from harness.modules import modules

    all_services = services()
    for name in ("locust-master", "locust-worker"):
        command = all_services[name]["command"]
        assert "-f" not in command and "--locustfile" not in command, f"{name}: locustfile is hard-wired"
        env = environment(all_services[name])
        assert env["LOCUST_LOCUSTFILE"] == "${LOCUST_LOCUSTFILE:-locustfiles/scaling_reads.py}"
        urls = json.loads(env["HARNESS_TARGET_URLS"])
        for module in modules().values():
            assert urls.get(module.id) == f"http://{module.id}:{module.port}", f"{name}: no URL for {module.id}"
            assert (ROOT / "locustfiles" / f"{module.id}.py").is_file()


def test_targets_and_workloads_require_the_admin_token():
    from harness.modules import modules

    all_services = services()
    for name in [*modules(), "locust-master", "locust-worker"]:
        value = environment(all_services[name]).get("HARNESS_ADMIN_TOKEN", "")
        match = REQUIRED_VARIABLE.match(value)
        assert match and match["name"] == "HARNESS_ADMIN_TOKEN", f"{name}: HARNESS_ADMIN_TOKEN is {value!r}"


def test_grafana_has_no_anonymous_access_or_sign_up():
    env = environment(services()["grafana"])
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED") == "false"
    assert env.get("GF_USERS_ALLOW_SIGN_UP") == "false"
    assert not any(key.startswith("GF_AUTH_ANONYMOUS_ORG") for key in env)


def grafana_entrypoint(password: str) -> subprocess.CompletedProcess:
    """The compose entrypoint of Grafana, run by this machine's sh as compose would run it."""
    entrypoint = services()["grafana"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"], entrypoint
    script = entrypoint[2].replace("$$", "$")  # compose's escape for a literal dollar
    env = {"GF_SECURITY_ADMIN_PASSWORD": password, "PATH": "/bin:/usr/bin"}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("placeholder", ["change-me", "changeme", "admin", "password", "short-pw"])
def test_grafana_refuses_a_placeholder_password(placeholder):
    done = grafana_entrypoint(placeholder)
    assert done.returncode == 1 and "GRAFANA_ADMIN_PASSWORD" in done.stderr, done


def test_grafana_starts_with_a_real_password():
    done = grafana_entrypoint("a-real-Passw0rd-of-length")
    # past the checks it execs Grafana's own /run.sh, which only exists in the image
    assert done.returncode != 1 and "run.sh" in done.stderr, done


# --- Prometheus -----------------------------------------------------------------------------------


def test_compose_prometheus_config_passes_promtool():
    done = run_promtool("check", "config", str(PROMETHEUS_YML))
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_prometheus_job_names():
    jobs = [job["job_name"] for job in prometheus_yml()["scrape_configs"]]
    assert sorted(jobs) == sorted(JOB_NAMES), jobs


def test_compose_prometheus_scrapes_compose_services():
    from harness.modules import modules

    all_services = services()
    jobs = {job["job_name"]: job for job in prometheus_yml()["scrape_configs"]}
    for job in jobs.values():
        hosts = [t.rsplit(":", 1)[0] for sc in job.get("static_configs", []) for t in sc["targets"]]
        hosts += [name for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
        for host in hosts:
            assert host == "localhost" or host in all_services, f"job {job['job_name']}: unknown host {host}"
    targets = {t for sc in jobs["targets"]["static_configs"] for t in sc["targets"]}
    for module in modules().values():
        assert f"{module.id}:{module.port}" in targets, f"job targets does not scrape module {module.id}"
    dns = [sd for sd in jobs["loadgen"].get("dns_sd_configs", []) if "locust-worker" in sd["names"]]
    assert dns and dns[0].get("type", "SRV") == "A", "job loadgen must find scaled workers by an A lookup"


def test_embedded_stack_config_has_the_same_jobs_and_passes_promtool(tmp_path):
    from harness.settings import Settings
    from harness.stack import SERVICES, prometheus_config

    settings = Settings(state_dir=tmp_path)
    config = prometheus_config(settings)
    embedded = {job["job_name"] for job in config["scrape_configs"]}
    command = SERVICES["prometheus"].command(settings, tmp_path / "prometheus")
    assert "--web.enable-lifecycle" not in command, "no HTTP API that stops or reloads Prometheus"
    compose_jobs = {job["job_name"] for job in prometheus_yml()["scrape_configs"]}
    assert embedded == compose_jobs, f"embedded {embedded} != compose {compose_jobs}"
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    done = run_promtool("check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# --- Grafana --------------------------------------------------------------------------------------


def test_datasource_provisioning_declares_the_dashboards_uid():
    datasources = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"]
    by_uid = {source.get("uid"): source for source in datasources}
    assert DATASOURCE_UID in by_uid, f"no datasource with uid {DATASOURCE_UID}: {list(by_uid)}"
    source = by_uid[DATASOURCE_UID]
    assert source["type"] == "prometheus" and source.get("isDefault") is True
    host, port = re.match(r"https?://([^:/]+):(\d+)", source["url"]).groups()
    prometheus = services().get(host)
    assert prometheus, f"datasource url {source['url']} names no compose service"
    container_ports = {str(p).rsplit(":", 1)[1] for p in prometheus.get("ports") or []}
    assert port in container_ports, f"{host} does not listen on {port} (ports {container_ports})"


def test_every_module_has_a_dashboard():
    from harness.modules import modules

    assert DASHBOARDS, "no dashboards/*.json"
    for module in modules().values():
        assert (ROOT / "dashboards" / f"{module.id}.json") in DASHBOARDS, f"no dashboard for {module.id}"


def test_dashboards_are_valid_with_unique_uids_and_one_datasource():
    uids: dict[str, Path] = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uid = dashboard.get("uid")
        assert uid, f"{path.name} has no uid"
        assert uid not in uids, f"{path.name} and {uids[uid].name} share uid {uid}"
        uids[uid] = path
        panels = list(dashboard_panels(dashboard.get("panels") or []))
        assert panels, f"{path.name} has no panels"
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids {ids}"
        for panel in panels:
            where = f"{path.name}, panel {panel.get('title')!r}"
            if panel.get("type") == "row" and "datasource" not in panel:
                continue
            assert (panel.get("datasource") or {}).get("uid") == DATASOURCE_UID, f"{where}: datasource"
            if panel.get("type") == "row":
                continue
            assert panel.get("targets"), f"{where} has no query"
            for target in panel["targets"]:
                assert (target.get("datasource") or {}).get("uid") == DATASOURCE_UID, (
                    f"{where}, target {target.get('refId')}: datasource"
                )


def test_dashboard_queries_parse_with_promtool(tmp_path):
    queries = all_queries()
    rules = [{"record": f"panel:q{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries, 1)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    done = run_promtool("check", "rules", str(path))
    listing = "\n".join(f"panel:q{i} ({p.name}: {t}): {e}" for i, (p, t, e) in enumerate(queries, 1))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{listing}"
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout


def test_dashboards_use_documented_metrics_only():
    documented = SERVER_METRICS | PROCESS_METRICS | LOAD_METRICS
    used = set()
    for path, title, expr in all_queries():
        for name in METRIC_NAME.findall(expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert base in documented, f"{path.name}, {title!r}: undocumented metric {name}"
            used.add(base)
    assert used & SERVER_METRICS and used & LOAD_METRICS, f"dashboards miss a side: {used}"


def test_dashboard_queries_filter_their_module_and_split_by_variant():
    checked = 0
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard_panels(dashboard.get("panels") or []):
            for target in panel.get("targets") or []:
                expr = target.get("expr", "")
                selectors = HARNESS_SELECTOR.findall(expr)
                for name, labels in selectors:
                    checked += 1
                    assert f'module="{path.stem}"' in labels, (
                        f'{path.name}, {panel["title"]!r}: {name} must filter module="{path.stem}"'
                    )
                if selectors:
                    assert "{{variant}}" in target.get("legendFormat", ""), (
                        f"{path.name}, {panel['title']!r}: legend must show {{{{variant}}}} (side by side)"
                    )
    assert checked, "no harness_* metric queried in any dashboard"


def test_documented_server_metrics_are_the_ones_the_targets_define():
    common = (ROOT / "targets" / "common.py").read_text()
    assert {"harness_http_request_duration_seconds", "harness_http_responses_total"} <= SERVER_METRICS
    for name in PROCESS_METRICS:
        assert name in common, f"{name} is not documented in targets/common.py"
    for name, path in _documented_server_metrics().items():
        base = name.removesuffix("_total")
        # prometheus-client adds `_total` to counters, so the constructor may name either form.
        assert re.search(rf"[\"']{base}(_total)?[\"']", path.read_text()), (
            f"{path.name} documents {name} but defines no such metric (renamed?): update it and the dashboards"
        )
