"""Lost updates: 1,000 ``mutate`` calls from 4 processes x 25 tasks on ONE session end with all
1,000 changes present, and with the revision counting every write — on every adapter whose
factory offers a storage URL other processes can reach (SQLite file, Redis, S3, PostgreSQL...).

The workers are real OS processes (this module run with ``--worker``), released together by a
line on their stdin, so the compare-and-set is exercised across connections and processes, not
only across tasks of one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.backends import BACKENDS, backend_of
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from tests.cache_factories import factory, offering

PROCESSES, TASKS, CALLS = 4, 25, 10
NAMESPACE = "lost-updates"
SESSION = "contended"
ROOT = Path(__file__).resolve().parents[1]


def open_cache(url: str) -> CacheBase:
    """A client of the store ``url`` names, waiting up to 30 s (SQLite's lock, under contention)."""
    return BACKENDS[backend_of(url)].open(url, timeout=30)


async def work(url: str, worker: int) -> dict[str, int]:
    """25 tasks x 10 mutates, each appending one unique token; returns conflict statistics."""
    async with open_cache(url) as cache:
        storage = ACBCacheStorage(cache, NAMESPACE)
        manager = ServerlessSessionManager(storage, mutate_retries=5_000)
        done = 0

        async def task(number: int) -> None:
            nonlocal done
            for call in range(CALLS):
                token = f"{worker}-{number}-{call}"

                def append(state: SessionState, token: str = token) -> None:
                    state.metadata.setdefault("tokens", []).append(token)

                await manager.mutate(SESSION, append)
                done += 1

        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        await asyncio.gather(*(task(number) for number in range(TASKS)))
        return {"worker": worker, "done": done}


def worker_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(work(args.url, args.worker))), flush=True)


def run_workers(url: str, env: dict[str, str]) -> list[dict[str, int]]:
    command = [sys.executable, "-m", "tests.test_lost_updates", "--url", url]
    workers = [
        subprocess.Popen(
            [*command, "--worker", str(number)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(PROCESSES)
    ]
    try:
        for process in workers:
            assert process.stdout is not None and process.stdout.readline() == "ready\n", (
                process.stderr.read() if process.stderr else ""
            )
        for process in workers:  # release them together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in workers:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()


CONTENDED = [
    name for name in offering("storage_url") if not getattr(factory(name), "SLOW_UNDER_CONTENTION", False)
]


@pytest.mark.parametrize("backend", CONTENDED)
async def test_a_thousand_concurrent_mutations_all_land(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with factory(backend).storage_url(tmp_path) as (url, env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        async with open_cache(url) as cache:
            manager = ServerlessSessionManager(ACBCacheStorage(cache, NAMESPACE))
            await manager.create_session("u", "p", session_id=SESSION, ttl_hours=1)

            results = await asyncio.to_thread(run_workers, url, env)

            assert sorted(result["done"] for result in results) == [TASKS * CALLS] * PROCESSES
            state = await manager.get_session(SESSION)
    assert state is not None
    tokens = state.metadata["tokens"]
    expected = {f"{w}-{t}-{c}" for w in range(PROCESSES) for t in range(TASKS) for c in range(CALLS)}
    assert len(tokens) == len(expected) == 1000
    assert set(tokens) == expected
    assert state.revision == 1 + 1000
    for w in range(PROCESSES):
        for t in range(TASKS):  # each task's own changes stay in the order it made them
            own = [tok for tok in tokens if tok.startswith(f"{w}-{t}-")]
            assert own == [f"{w}-{t}-{c}" for c in range(CALLS)]


if __name__ == "__main__":
    worker_main()
