"""The stores Scaling Reads added to the stack, without running them: the replica's address and
port under an offset, the shared HTTP cache's nginx configuration, and WAL positions."""

from harness import services_http_cache
from harness.modules import loadable
from harness.settings import Settings
from targets.scaling_reads.replica import lsn_int


def test_the_replica_and_the_cache_move_with_the_port_offset():
    settings = Settings(port_offset=400)
    assert (settings.pg_replica_port, settings.http_cache_port) == (15834, 18580)
    assert "port=15834" in settings.pg_replica_dsn and "dbname=harness" in settings.pg_replica_dsn
    assert Settings(port_offset=400, pg_replica_port=25434).pg_replica_port == 25434  # an explicit port wins


def test_the_http_cache_listens_on_loopback_and_proxies_every_module(tmp_path):
    settings = Settings(port_offset=400)
    config = services_http_cache.config(settings, tmp_path)
    assert "listen 127.0.0.1:18580;" in config and "proxy_cache_revalidate on;" in config
    for spec in loadable()[0].values():
        assert f"location /{spec.id}/ {{ proxy_pass http://127.0.0.1:{spec.port + 400}/; }}" in config
    assert str(tmp_path) in config and "/var/" not in config  # every path is the data dir's


def test_wal_positions_compare_as_numbers():
    assert lsn_int("0/16B3748") == 0x16B3748
    assert lsn_int("1/0") == 1 << 32 > lsn_int("0/FFFFFFFF")
