"""TLS against real TLS-only redis-servers, with a CA and certificates made for the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from serverless_sessions.adapters.cache import redis
from serverless_sessions.errors import StorageUnavailableError
from tests.cache_factories.redis import SHARED_URL
from tests.redis_servers import RedisProcess, TlsFiles, make_tls_files, running_tls_redis

TIMEOUT = 0.5


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[RedisProcess]:
    with running_tls_redis(tmp_path_factory.mktemp("tls"), tls, client_certs=False) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[RedisProcess]:
    with running_tls_redis(tmp_path_factory.mktemp("mtls"), tls, client_certs=True) as server:
        yield server


def url(server: RedisProcess, host: str = "127.0.0.1", **query: object) -> str:
    args = "&".join(f"{name}={value}" for name, value in query.items())
    return f"rediss://{host}:{server.port}/0?{args}"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_round_trip_over_tls_with_hostname_check(
    tls_server: RedisProcess, tls: TlsFiles, host: str
) -> None:
    async with redis.Cache.from_url(url(tls_server, host, ssl_ca_certs=tls.ca), namespace="n") as cache:
        assert cache.settings.ssl and cache.settings.ssl_check_hostname
        entry = await cache.compare_and_set("s", b"over tls", expected_version=0, ttl=60, indexes=["u"])
        assert await cache.get_entry("s") == entry
        assert await cache.index_members("u") == ["s"]
        assert await cache.compare_and_delete("s", expected_version=1)
        report = await cache.health()
        assert report["available"] is True and report["address"].startswith("rediss://")


async def test_unknown_ca_is_refused_quickly_and_clearly(tls_server: RedisProcess, tls: TlsFiles) -> None:
    cache = redis.Cache.from_url(url(tls_server, ssl_ca_certs=tls.other_ca), retry_attempts=3)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=r"TLS handshake failed.*certificate verify failed"):
        await cache.get("s")
    assert time.monotonic() - started < 1.0  # a refused certificate is not retried
    await cache.close()


async def test_no_verification_when_explicitly_disabled(tls_server: RedisProcess, tls: TlsFiles) -> None:
    insecure = url(tls_server, ssl_ca_certs=tls.other_ca, ssl_cert_reqs="none", ssl_check_hostname="false")
    async with redis.Cache.from_url(insecure) as cache:
        assert await cache.ping() >= 0


async def test_mutual_tls(mtls_server: RedisProcess, tls: TlsFiles) -> None:
    with_cert = url(
        mtls_server, ssl_ca_certs=tls.ca, ssl_certfile=tls.client_cert, ssl_keyfile=tls.client_key
    )
    async with redis.Cache.from_url(with_cert, namespace="n") as cache:
        await cache.set("k", b"mutual", ttl=30)
        assert await cache.get("k") == b"mutual"
        await cache.delete("k")
    without_cert = redis.Cache.from_url(url(mtls_server, ssl_ca_certs=tls.ca), retry_attempts=0)
    with pytest.raises(StorageUnavailableError) as caught:
        await without_cert.get("k")
    assert "rediss://127.0.0.1" in str(caught.value)
    await without_cert.close()


def test_tls_settings_are_checked() -> None:
    settings = redis.Cache.from_url(
        "rediss://h:6380/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_cert_reqs=REQUIRED&ssl_check_hostname=no"
    ).settings
    assert (settings.ssl_ca_certs, settings.ssl_certfile, settings.ssl_keyfile) == (
        "/ca.pem",
        "/c.pem",
        "/k.pem",
    )
    assert settings.ssl_cert_reqs == "required" and settings.ssl_check_hostname is False


# -- a client and a server that disagree on TLS --------------------------------------------------


async def test_tls_client_against_the_plain_text_server_fails_in_time_suggesting_redis() -> None:
    # The shared server speaks plain text: it never answers a TLS hello. Nothing is written.
    plain_as_tls = SHARED_URL.replace("redis://", "rediss://", 1)
    cache = redis.Cache.from_url(
        plain_as_tls, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_attempts=5
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        await cache.get("k")
    elapsed = time.monotonic() - started
    await cache.close()
    message = str(caught.value)
    assert f"no answer within {TIMEOUT:g}s" in message  # one budget for all six attempts
    assert "is the server plain-text? then use redis://" in message
    assert elapsed < 4 * TIMEOUT + 2


async def test_plain_client_against_a_tls_only_server_suggests_rediss(tls_server: RedisProcess) -> None:
    cache = redis.Cache.from_url(
        f"redis://127.0.0.1:{tls_server.port}/0", socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        await cache.get("k")
    elapsed = time.monotonic() - started
    await cache.close()
    assert "does the server accept only TLS? then use rediss://" in str(caught.value)
    assert elapsed < 4 * TIMEOUT + 2


async def test_tls_client_answered_in_plain_text_suggests_redis(tls: TlsFiles) -> None:
    # A plain-text Redis that finds a line in the TLS hello answers it with an error line.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        answering = threading.Thread(target=_answer_in_plain_text, args=(listener,), daemon=True)
        answering.start()
        url = f"rediss://127.0.0.1:{listener.getsockname()[1]}/0?ssl_ca_certs={tls.ca}"
        cache = redis.Cache.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        with pytest.raises(StorageUnavailableError) as caught:
            await cache.get("k")
        await cache.close()
        answering.join(timeout=10)
    message = str(caught.value)
    assert "WRONG_VERSION_NUMBER" in message and "then use redis:// instead of rediss://" in message
    assert "check the CA file" not in message


def _answer_in_plain_text(listener: socket.socket) -> None:
    conn, _ = listener.accept()  # one connection: a refused handshake is not retried
    with conn:
        conn.recv(4096)
        conn.sendall(b"-ERR unknown command\r\n")
