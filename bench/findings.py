"""Performance problems found in ``src/`` while benchmarking, each with evidence measured now.

Every finding first checks that the code it describes is still there (a plain look at the
source), so a fixed problem is reported as such instead of being repeated from memory; then it
measures its evidence with the same harness as the cases, and states the proposed fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType

import zstandard

from backends import open_cache, storage
from cases_coldstart import _BASELINE, _CANDIDATE, _PRELUDE, import_diff, run_child
from context import Context
from harness import Result, Side, alternate, ladder, timed_loop, timed_sync
from redis_env import private_server, raw_client
from serverless_sessions import codec as codec_module
from serverless_sessions import model as model_module
from serverless_sessions.adapters.cache import redis as redis_module
from serverless_sessions.adapters.cache.redis import client as client_module
from serverless_sessions.adapters.cache.redis import scripts as _redis_scripts
from serverless_sessions.storage import cache_storage as storage_module
from sessions import SessionFactory

_MAX_OUTPUT = 64 * 1024 * 1024


def _present(module: ModuleType, *needles: str) -> bool:
    source = inspect.getsource(module)
    return all(needle in source for needle in needles)


def _gone(title: str) -> str:
    return f"- **{title}**: no longer found in the source; nothing to propose."


async def _cpu_us(ctx: Context, fns: Sequence[Callable[[], object]], ops: int) -> list[float]:
    """Median CPU µs per call of each function, in rotating repetitions (the cases' harness)."""

    def side(fn: Callable[[], object]) -> Side:
        async def run() -> float:
            return timed_sync(lambda _: fn(), ops)

        return Side("", ops, run)

    times = await alternate([side(fn) for fn in fns], ctx.sizes.ladder_reps, warmup=False)
    return [sorted(per_op)[len(per_op) // 2] * 1e6 for per_op in times]


async def _zstd_contexts(ctx: Context) -> str:
    title = "Codec builds zstd contexts, and a 64 MB read buffer, on every call (codec.py)"
    if not _present(codec_module, "ZstdCompressor(level=self.zstd_level)", "stream_reader("):
        return _gone(title)
    body = SessionFactory("finding", 5_000).template.model_dump_json().encode()
    frame = zstandard.ZstdCompressor(level=3).compress(body)
    compressor, decompressor = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()

    def current_reader() -> bytes:
        with zstandard.ZstdDecompressor().stream_reader(frame) as reader:
            return bytes(reader.read(_MAX_OUTPUT + 1))

    new_c, reuse_c, reader, one_shot, reuse_d = await _cpu_us(
        ctx,
        [
            lambda: zstandard.ZstdCompressor(level=3).compress(body),
            lambda: compressor.compress(body),
            current_reader,
            lambda: zstandard.ZstdDecompressor().decompress(frame, max_output_size=_MAX_OUTPUT),
            lambda: decompressor.decompress(frame, max_output_size=_MAX_OUTPUT),
        ],
        ctx.sizes.codec_ops,
    )
    return (
        f"- **{title}.** `_compress` constructs a `ZstdCompressor` per call, and `_unzstd` a "
        "`ZstdDecompressor` whose `stream_reader(...).read(_MAX_DECOMPRESSED + 1)` allocates an "
        "output buffer of that size (64 MB) on every decode. Measured now on the 5 KB body: "
        f"compress {new_c:.1f} µs with a new context vs {reuse_c:.1f} µs reused; decompress "
        f"{reader:.1f} µs as written, {one_shot:.1f} µs with a new context and one-shot "
        f"`decompress(max_output_size=...)`, {reuse_d:.1f} µs with a reused context. **Fix:** "
        "keep one compressor and one decompressor per thread (zstd contexts are not "
        "thread-safe: a `threading.local` in the codec) and decompress in one shot with "
        "`max_output_size` (the encoder always writes the content size; fall back to a stream "
        "reading small chunks only for frames without it). Saves "
        f"~{new_c - reuse_c + reader - reuse_d:.0f} µs per 5 KB round trip."
    )


async def _json_walk(ctx: Context) -> str:
    title = "The JSON-content walk runs twice per round trip (model.py, codec.py)"
    if not _present(model_module, "AfterValidator(_json_only)", "def check_contents"):
        return _gone(title)
    if not _present(codec_module, "check_contents(state)"):
        return _gone(title)
    state = SessionFactory("finding", 5_000).template
    text = state.model_dump_json()
    codec = codec_module.Codec()
    envelope = codec.encode(state)
    walk, validate, roundtrip = await _cpu_us(
        ctx,
        [
            lambda: model_module.check_contents(state),
            lambda: model_module.SessionState.model_validate_json(text),
            lambda: codec.decode(codec.encode(state), key="finding"),
        ],
        ctx.sizes.codec_ops,
    )
    return (
        f"- **{title}.** `Codec.encode` calls `check_contents` (a recursive pure-Python walk of "
        "every free-form value) and `Codec.decode` runs the same walk again through the "
        "`_json_only` after-validators. Measured now on a 5 KB session: one walk "
        f"{walk:.1f} µs; `model_validate_json` {validate:.1f} µs (walk included); a full codec "
        f"round trip {roundtrip:.1f} µs, so the two walks are ~{200 * walk / roundtrip:.0f}% "
        f"of it ({len(envelope):,}-byte envelope). This is what most of the memory-adapter, "
        "Redis-retrieve and codec misses spend their CPU on. **Fix:** walk once, at encode "
        "(stored bytes are then known-good; with encryption they are also authenticated): "
        "validate decoded payloads with a validation context (e.g. `context={'stored': True}`) "
        "that `_json_only` honours by returning at once, keeping the cheap checks that a JSON "
        "parser cannot guarantee (64-bit integer range) in a flat pass or in the parser "
        f"settings. Expected saving: ~{walk:.0f} µs per 5 KB decode."
    )


async def _write_script(ctx: Context) -> str:
    title = "The Redis WRITE script costs many times the server work of a SET (_redis_scripts.py)"
    script = getattr(_redis_scripts, "WRITE", "")
    if "fit(" not in script:
        return _gone(title)
    calls = script.count("redis.call(")
    ops = 60 if ctx.smoke else 400
    factory = SessionFactory("finding-write", 5_000)
    states = factory.batch(ops)
    async with (
        private_server() as url,
        raw_client(url) as raw,
        open_cache("redis", ctx, "finding", url=url) as cache,
    ):
        st = storage(cache, "finding")
        blob = st.encode(factory.template)

        async def server_us(command: str, work: Callable[[], Awaitable[None]]) -> float:
            before = (await raw.info("commandstats")).get(f"cmdstat_{command}", {})
            await work()
            after = (await raw.info("commandstats")).get(f"cmdstat_{command}", {})
            made = int(after.get("calls", 0)) - int(before.get("calls", 0))
            return (int(after.get("usec", 0)) - int(before.get("usec", 0))) / max(made, 1)

        async def store_all() -> None:  # first call creates, the second updates
            for state in states:
                await st.store_session(state)

        async def set_all() -> None:
            for state in states:
                await raw.set(f"raw:{state.session_id}", blob, ex=86400)

        create_us = await server_us("evalsha", store_all)
        update_us = await server_us("evalsha", store_all)
        set_us = await server_us("set", set_all)
    return (
        f"- **{title}.** Server CPU per call, measured now on a private redis-server (INFO "
        f"commandstats): create {create_us:.1f} µs, update {update_us:.1f} µs, against "
        f"{set_us:.1f} µs for `SET EX` of the same bytes. The script has {calls} `redis.call` "
        "sites; every write runs `fit()` on each zset it touches (the expiry zset and both "
        "index zsets: `ZRANGE -1 -1 WITHSCORES` + `PEXPIREAT`/`PERSIST`), plus `HMGET`, two "
        "`HSET`s and `PEXPIREAT` on the hash. On 2 cores the server competes with the client "
        "for CPU, so this shows up in every Redis store row. **Fix:** on a write, extend a "
        "zset's expiry with `PEXPIREAT zset ms GT` (Redis >= 7.0; one call, no range read; a "
        "`+inf` member still PERSISTs), keep the `ZRANGE`-based `fit()` only for deletes and "
        "purges where the maximum can shrink; write `e` in the same `HSET` as the other fields."
    )


async def _read_path(ctx: Context) -> str:
    title = "Reading one session builds a pipeline for one command (redis.py `get_entries`)"
    if not _present(redis_module, "pipeline(transaction=False)", "return (await self.get_entries(["):
        return _gone(title)
    ops = 20 if ctx.smoke else 300
    states = SessionFactory("finding-read", 5_000).batch(ops)
    async with (
        open_cache("redis", ctx, "finding-read") as cache,
        raw_client(ctx.redis_url) as raw,
    ):
        st = storage(cache, ctx.namespace("finding-read"))
        for state in states:
            await st.store_session(state)
        data = [f"{cache.settings.key_prefix}:{st.namespace}:d:{s.session_id}" for s in states]

        async def piped(i: int) -> object:
            pipe = raw.pipeline(transaction=False)
            pipe.hmget(data[i], ["v", "n", "e"])
            return await pipe.execute()

        def side(label: str, op: Callable[[int], Awaitable[object]]) -> Side:
            async def run() -> float:
                return await timed_loop(op, ops)

            return Side(label, ops, run)

        steps = [
            side("HMGET", lambda i: raw.hmget(data[i], ["v", "n", "e"])),
            side("pipeline of that one HMGET", piped),
            side(
                "adapter get_entry", lambda i: cache.get_entry(states[i].session_id, namespace=st.namespace)
            ),
        ]
        text = await ladder("One at a time", steps, ctx.sizes.ladder_reps, warmup=False)
    timer = _present(client_module, "asyncio.timeout(")
    wrapper = (
        ", and every call goes through the link's retry wrapper, a semaphore and an "
        "`asyncio.timeout` (a timer handle per call)"
        if timer
        else ""
    )
    semaphore = (
        "; acquire the semaphore without a timeout context when a slot is free (`locked()` "
        "first), so the timer is only armed when the pool is actually exhausted"
        if timer
        else ""
    )
    return (
        f"- **{title}.** `get_entry` calls `get_entries([key])`, which builds a "
        f"non-transactional pipeline even for one key{wrapper}. Measured now: {text}. "
        f"**Fix:** for one key send a plain `HMGET`{semaphore}."
    )


def _row(results: Sequence[Result], case_id: str) -> Result | None:
    return next((r for r in results if r.case.case_id == case_id and not r.error), None)


def _purge_round_trips(results: Sequence[Result]) -> str:
    fixed, share = _row(results, "cleanup-redis-fixed"), _row(results, "cleanup-redis-1pct")
    if fixed is None or share is None:
        return "- **Redis purge round trips**: cleanup rows did not run; no evidence."
    few, many = fixed.baseline_s * 1e6, share.candidate_s * 1e6
    expired = fixed.case.baseline.ops
    indexes = min(expired, 50) + min(expired, 97)  # users and projects of the expired batch
    return (
        "- **Redis purge makes one script round trip per distinct index name (redis.py "
        "`purge_expired`).** In this run a cleanup cost "
        f"{few:.0f} µs per expired session with {fixed.case.baseline.ops} expired, but "
        f"{many:.0f} µs with {share.case.candidate.ops}: the cost follows the number of "
        f"distinct indexes touched (here {indexes} index names for {expired} expired sessions: "
        f"{indexes} `ZSET` script calls, gathered but each a separate EVALSHA), not the "
        "sessions. Flat in the "
        "total either way, so the target is met. **Fix:** on a single server send the index "
        "drops of one batch in one pipeline (or one script call with all index keys); in a "
        "cluster, one pipeline per node."
    )


async def _cold_imports(ctx: Context) -> str:
    base = _PRELUDE + _BASELINE.format(url=ctx.redis_url, key=f"{ctx.token}:missing")
    cand = _PRELUDE + _CANDIDATE.format(url=ctx.redis_url, ns=ctx.namespace("c"), sid="x")
    *_, base_err = await run_child(base, "-X", "importtime")
    *_, cand_err = await run_child(cand, "-X", "importtime")
    summary = import_diff(base_err, cand_err, top=6).replace("\n", "\n  ")
    return (
        "- **Cold start is dominated by imports the first retrieve does not need "
        "(`__init__.py`, factory.py, settings.py).** Measured now (`-X importtime`, modules "
        "the baseline does not import):\n\n  ```text\n  " + summary + "\n  ```\n\n"
        "  `import serverless_sessions` eagerly imports the factory, settings "
        "(pydantic-settings, which pulls dotenv and argparse), the config-file readers, the "
        "manager and pages; `create_session_storage(url=...)` then builds `StorageSettings` "
        "(a `BaseSettings`) twice. **Fix:** make `__init__` lazy (module `__getattr__`, as "
        "already done for the legacy classes) so the storage path imports codec, model, "
        "storage and one adapter only; build settings for an explicit URL from a plain "
        "frozen model plus one `os.environ` scan of `SERVERLESS_SESSIONS_*`, importing "
        "pydantic-settings only when a config file is used. Floor: pydantic itself and the "
        "`SessionState` schema build (~20 ms self in model.py) remain, so expect ~1.6-1.8x "
        "rather than 1.5x unless the model's schema is built lazily or pre-compiled."
    )


async def _write_copies(ctx: Context) -> str:
    title = "Every store copies the session to bump its revision (cache_storage.py `write`)"
    if not _present(storage_module, 'model_copy(update={"revision"'):
        return _gone(title)
    state = SessionFactory("finding", 5_000).template
    copy, dump, dump_excluding = await _cpu_us(
        ctx,
        [
            lambda: state.model_copy(update={"revision": state.revision + 1}),
            lambda: state.model_dump_json(),
            lambda: state.model_dump_json(exclude={"revision"}),
        ],
        ctx.sizes.codec_ops,
    )
    return (
        f"- **{title}.** `write` makes `model_copy(update={{'revision': n + 1}})` only so the "
        "stored JSON carries the new revision, but `decode` overwrites `revision` from the "
        f"entry's version anyway. Measured now: the copy {copy:.1f} µs; `model_dump_json` "
        f"{dump:.1f} µs, {dump_excluding:.1f} µs with `exclude={{'revision'}}`. Small next to "
        "the codec, but it is most of the storage layer's own cost in the memory-adapter row. "
        "**Fix:** encode the caller's object with the revision excluded (or a codec argument), "
        "no copy; also validate the storage namespace once in `__init__` rather than by regex "
        "in every adapter call."
    )


async def _sqlite_batches(ctx: Context, results: Sequence[Result]) -> str:
    bulk = _row(results, "bulk-store-sqlite")
    async with open_cache("sqlite", ctx, "finding-sqlite") as cache:
        await cache.ping()
        hops = [await cache.ping() for _ in range(50)]
    hop = sorted(hops)[len(hops) // 2] * 1e6
    store = "" if bulk is None else f" against {bulk.baseline_s * 1e6:.0f} µs per store"
    return (
        "- **SQLite: every call is one worker-thread hop and one `BEGIN IMMEDIATE` "
        "transaction (sqlite.py).** A no-op call (`ping`) costs "
        f"{hop:.0f} µs now{store}; concurrent stores queue on the one worker and commit one by "
        "one, so `gather` gains little (bulk-store-sqlite). **Fix:** a batch write "
        "(`compare_and_set_many` on the adapter, `store_sessions` on the storage) that runs N "
        "compare-and-sets in one worker call and one transaction: one hop and one WAL commit "
        "per batch instead of per session. The same method on Redis would pipeline the WRITE "
        "script (the bench's `redis_loader` is a working prototype of it)."
    )


async def findings(ctx: Context, results: Sequence[Result]) -> list[str]:
    """The findings as markdown list items, evidence measured in this run."""
    items = [
        await _zstd_contexts(ctx),
        await _json_walk(ctx),
        await _write_script(ctx),
        await _read_path(ctx),
        _purge_round_trips(results),
        await _cold_imports(ctx),
        await _sqlite_batches(ctx, results),
        await _write_copies(ctx),
    ]
    return [f"{number}. {item.removeprefix('- ')}" for number, item in enumerate(items, 1)]
