"""The embedded shared HTTP cache: nginx's proxy_cache, the stand-in for a CDN's edge.

One nginx in front of every module's target: `<http_cache_url>/<module id>/...` is proxied to that
module's target (the prefix stripped), and a response is cached as its `Cache-Control: max-age` says
(nginx honours the origin's headers; nothing is cached without them). An expired entry is
revalidated with the origin by a conditional GET (`If-None-Match` with the entry's ETag), so a 304
refreshes it without a body; concurrent misses of one key wait for one origin request
(`proxy_cache_lock`). Each response says what the cache did in `X-Cache-Status` (HIT, MISS,
REVALIDATED, EXPIRED, STALE, ...). The configuration is written at start from the specs that load,
as Prometheus's is; nginx runs as the service user with everything under its data dir.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.modules import loadable
from harness.service import Service, find_binary, http_ok, never_raises
from harness.settings import Settings, hostport


def _binary() -> str:
    return find_binary("nginx", extra_globs=("/usr/sbin/nginx",),
                       hint="install it with `apt-get install nginx-light` (scripts/install.sh does)")


def config(settings: Settings, data_dir: Path) -> str:
    specs = loadable()[0].values()  # a broken spec's target cannot run, so nothing is proxied to it
    origins = {spec.id: hostport(settings.target_host, settings.module_port(spec.port)) for spec in specs}
    locations = "".join(f"    location /{module}/ {{ proxy_pass http://{origin}/; }}\n"
                        for module, origin in sorted(origins.items()))
    return f"""daemon off;
worker_processes 1;
pid {data_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {data_dir}/client_body;
    proxy_temp_path {data_dir}/proxy;
    fastcgi_temp_path {data_dir}/fastcgi;
    uwsgi_temp_path {data_dir}/uwsgi;
    scgi_temp_path {data_dir}/scgi;
    proxy_cache_path {data_dir}/cache levels=1:2 keys_zone=edge:32m max_size=1g inactive=10m use_temp_path=off;
    server {{
        listen {hostport(settings.bind, settings.http_cache_port)};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_cache edge;
        proxy_cache_revalidate on;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 5s;
        proxy_cache_key $request_uri;
        add_header X-Cache-Status $upstream_cache_status always;
        location = /healthz {{ access_log off; return 200 "ok\\n"; }}
{locations}    }}
}}
"""


def command(settings: Settings, data_dir: Path) -> list[str]:
    binary = _binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir.parent / "http_cache.conf"
    path.write_text(config(settings, data_dir))
    return [binary, "-c", str(path), "-p", str(data_dir), "-e", "stderr"]


def _version(settings: Settings) -> str:
    done = subprocess.run([_binary(), "-v"], capture_output=True, text=True, timeout=5)
    return done.stderr.strip().removeprefix("nginx version: ")


SERVICE = Service("http_cache", lambda s: s.http_cache_port, command,
                  lambda s: http_ok(f"{s.http_cache_url}/healthz"), version=never_raises(_version),
                  port_setting="HARNESS_HTTP_CACHE_PORT", host_field="http_cache_host")
