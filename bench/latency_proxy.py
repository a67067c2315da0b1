"""A TCP proxy that delays every chunk by a fixed one-way latency: a network on loopback.

On loopback a Redis round trip is ~0.1 ms and mostly client CPU, so designs that save round
trips look no better than designs that save CPU. A serverless function talking to a managed
Redis sees ~0.3-1 ms per round trip; the cases that are about round trips are also measured
through this proxy. It runs in its own process (``python latency_proxy.py TARGET_PORT DELAY_MS``
prints its port), so its work does not share the benchmark's event loop. Order is kept per
direction; each chunk is delivered ``DELAY_MS`` after it was read. The effective round trip
(the delay twice, plus the extra hop) is measured with PING and reported, not assumed.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

_HOST = "127.0.0.1"
_SCRIPT = str(Path(__file__).resolve())


def _relay(src: socket.socket, dst: socket.socket, delay: float) -> None:
    """Copy ``src`` to ``dst``, each chunk ``delay`` seconds after it arrived (order kept).

    Threads and ``time.sleep`` rather than asyncio: the event loop's timers are rounded up to
    whole milliseconds by epoll, too coarse for sub-millisecond latencies.
    """
    pending: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def deliver() -> None:
        while True:
            due, data = pending.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        dst.close()

    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    while True:
        try:
            data = src.recv(1 << 16)
        except OSError:
            data = b""
        pending.put((time.monotonic() + delay, data))
        if not data:
            break
    sender.join()


def serve(target_port: int, delay: float) -> None:
    """Accept on a free loopback port (printed on stdout) and relay to ``target_port``."""
    listener = socket.create_server((_HOST, 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection((_HOST, target_port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=_relay, args=(src, dst, delay), daemon=True).start()


@asynccontextmanager
async def latency_proxy(target_port: int, one_way_ms: float) -> AsyncIterator[int]:
    """Run the proxy in a child process; yield the port to connect to; stop it on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        _SCRIPT,
        str(target_port),
        str(one_way_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
        yield int(line)
    finally:
        process.terminate()
        await process.wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]) / 1000)
