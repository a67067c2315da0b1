"""Why a case's target may be missed, shown under the miss in the results file.

Only cases that set ``on_miss`` use these; the suite's findings (what was measured, where the
time goes, what would reach a target) are prose in the maintained part of ``RESULTS.md``.
"""

from __future__ import annotations

CODEC_MISS = """\
What is left of a 5 KB round trip beyond pydantic's own JSON is zstd (~15-20 µs) and the
encode-side content walk that refuses values JSON would silently change (NaN stored as null).
Levers: do that check in Rust (strict pydantic `JsonValue` validation), or compress only above
a size threshold the bench justifies."""

BULK_MISS = """\
`gather` overlaps round trips but not CPU, and a store is mostly client and server CPU on 2
shared cores. The batch (`store_sessions`: shared pipelines on Redis, one transaction per group
on SQLite) removes the round trips and commits; what is left is per-session CPU: the encode and
the write script's server time on Redis, the encode and the SQL statements under one GIL on
SQLite. Two prototypes of a dedicated batch path measured the floor (see Findings): on Redis,
the write scripts sent straight to the pipeline without any call layer were no faster (client
and server each hold about one of the 2 cores); on SQLite, one worker job per chunk of encoded
sessions reached 4.0-4.45x, and overlapping encode and writes was slower under the GIL."""

SERVER_CPU_MISS = """\
The profile below is the server's: `INFO commandstats` per write, by command. No script that
takes the 5 KB value as an argument and keeps compare-and-set, expiry and the index and activity
zsets gets near 25 µs on this layout (measured piece by piece in Findings: handing the value to
Lua, the hash write, about 12 µs per zset pair); it needs the value kept out of Lua and fewer
zsets per write, a change of the stored layout with an upgrade path for existing data."""

COLDSTART_MISS = """\
The candidate's extra time is import time (see the profile: modules only the candidate
imports), not connecting or reading. Levers: a lazy package `__init__`, settings for an explicit
URL without pydantic-settings, and the `SessionState` schema built once, on first use (all in
place). What remains is pydantic itself, which the model needs: importing it (about 20 ms here),
its plugin discovery on the first model class (`pydantic.plugin._loader` reads every installed
distribution's entry points, 10-13 ms in this venv; `PYDANTIC_DISABLE_PLUGINS` would skip it, a
choice for the deployment, not the library) and the `SessionState` validator (about 13 ms).
Without the library at all, `import redis.asyncio` plus `from pydantic import BaseModel` and one
one-field model class measured 1.56x `import redis.asyncio` alone (see Findings): the floor with
a pydantic model is above this target."""
