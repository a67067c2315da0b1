"""Redis for the benchmark: the shared server (our keys only) and a private throw-away server.

On the shared server every key this run writes contains the run's token, and :func:`unlink_token`
removes exactly those with SCAN + UNLINK; nothing here ever flushes a database or calls KEYS.
The private server (for the 10^6-session listing) runs from a temporary directory on a free
loopback port, without persistence, and is shut down by the process that started it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

SHARED_URL = "redis://127.0.0.1:6379/13"


@asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py asyncio client (the baselines' client), closed on exit."""
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def server_version(url: str) -> str:
    async with raw_client(url) as client:
        info = await client.info("server")
    return str(info.get("redis_version", "unknown"))


async def unlink_token(url: str, token: str) -> int:
    """Delete every key containing ``token`` (SCAN + UNLINK, batched); return how many."""
    removed = 0
    async with raw_client(url) as client:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"*{token}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += int(await client.unlink(*batch))
                batch = []
        if batch:
            removed += int(await client.unlink(*batch))
    return removed


async def measured_rtt_ms(client: aioredis.Redis, samples: int = 60) -> float:
    """Median PING round trip in milliseconds (after one warm-up PING)."""
    await client.ping()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await client.ping()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def private_server() -> AsyncIterator[str]:
    """Start a private ``redis-server`` on loopback; yield its URL; stop it and remove its dir."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH (needed for the 10^6 listing case)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    port = _free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    process = await asyncio.create_subprocess_exec(
        binary, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        await _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with raw_client(url) as client:
        for _ in range(200):
            if process.returncode is not None:
                raise RuntimeError(f"private redis-server exited with {process.returncode}")
            try:
                await client.ping()
                return
            except (RedisConnectionError, OSError):
                await asyncio.sleep(0.025)
        raise RuntimeError("private redis-server did not answer within 5 s")
