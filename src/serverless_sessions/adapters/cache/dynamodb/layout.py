"""Items of the DynamoDB cache adapter: keys, attributes, and their (de)serialisation.

One table, primary key ``pk`` (S) + ``sk`` (S). ``{ns}`` is the namespace (empty for the default
one); namespaces never hold ``#``, so the part after ``#d#`` or ``#i#`` is the whole key or index
name, whatever characters it has, and a data item can never collide with an index item::

    pk = "ns#{ns}#d#{key}"     sk = "d"            data item: val, ver, tok, exp, ttl, idx, gp, k,
                                                   vw, gen, len, lw, lttl, ta
    pk = "ns#{ns}#d#{key}"     sk = "l#{gen}#{p}"  log item at position p (10 digits): v, ttl, a
    pk = "ns#{ns}#i#{index}"   sk = "{key}"        index item: exp, ttl (a copy of its key's)

Each key is its own partition (its data item and its log), so writes spread over the whole
table; the log's items sort by position, so the last ``n`` of them are one ``Query`` of a key
range. An index is one partition (one ``Query`` lists it). Two global secondary indexes list a
namespace without a ``Scan``: their partition key ``gp = "ns#{ns}#s#{shard}"`` spreads each
namespace over :data:`SHARDS` partitions (``shard`` = CRC-32 of the key, so it never changes):

* ``ss_by_key`` (``gp``, ``k``), projecting ``exp``: every key of a namespace, in key order;
* ``ss_by_expiry`` (``gp``, ``exp``), projecting ``k`` and ``idx``: only items that expire (an
  item without ``exp`` is not in it), in expiry order, so purging reads only expired items.

Neither projects ``ver`` or ``tok``, which change on every write: a write that keeps the expiry
(and index names) leaves both indexes untouched and pays for no index write.

``exp`` is the exact expiry (UNIX seconds, a float); ``ttl`` is the same rounded *up* to whole
seconds, DynamoDB's native TTL attribute, so native deletion never precedes the logical expiry.
``tok`` is a random token replaced by every write: conditions compare it, like an ETag, so a write
based on an older read — even of an earlier incarnation with the same version — always fails.

The log (:class:`LogState`): ``len`` items of generation ``gen`` weighing ``lw`` in all; ``vw``
is the value's weight (absent on items written before weights: the value's length counts), and
``ta`` the latest append's ``touched_at``. ``gen`` is random and new whenever the log is replaced,
so the items of one log never mix with another's: a reader asks only for the generation the data
item names, and an item ``(gen, p)`` is written once and never changed (only deleted). ``a`` on the
first item of an append names that append.

Native TTL of log items: every write or append moves the key's expiry, and cannot touch every
item of a long log. So a log item carries a *stamp* (its ``ttl``) later than the key's expiry
when it was written — by :data:`LOG_STAMP_HEADROOM`, or by the key's time to live if longer —
and ``lttl`` on the data item is a lower bound of every stamp. A write whose expiry would pass
``lttl`` first raises the stamps (:func:`.log.restamp`): at most once per headroom of activity,
O(log) then. Native TTL therefore never deletes an item of a live key, and deletes the log of an
expired one some time after the key itself (``purge_expired`` removes both at once). Items
written while the key had no expiry carry no stamp, and a write that removes the expiry removes
the stamps first; a key given an expiry later keeps such items unstamped, so only ``delete`` and
``purge_expired`` remove them, not native TTL.
"""

from __future__ import annotations

import math
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from serverless_sessions.errors import (
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionIdError,
    SessionTooLargeError,
)
from serverless_sessions.ttl import is_expired

__all__ = [
    "BY_EXPIRY",
    "BY_KEY",
    "DATA_SK",
    "EMPTY_LOG",
    "LOG_STAMP_HEADROOM",
    "MAX_INDEXES",
    "SHARDS",
    "LogState",
    "Record",
    "check_index",
    "check_key",
    "data_item",
    "data_pk",
    "index_item",
    "index_pk",
    "item_size",
    "listed",
    "live",
    "log_item",
    "log_position",
    "log_sk",
    "log_stamp",
    "new_generation",
    "number",
    "shard_pk",
]

DATA_SK = "d"
SHARDS = 16
"""Partitions per namespace in the listing indexes. Part of the stored layout: never change it."""
BY_KEY = "ss_by_key"
BY_EXPIRY = "ss_by_expiry"
MAX_INDEXES = 12
"""Index names per key, so a write's transaction (its data item, its index items and an expired
incarnation's other index items) holds at most 25 items: AWS allows 100, emulators 25."""
MAX_EXPIRES_AT = 253402300799.0
"""9999-12-31T23:59:59Z: later expiries are refused (DynamoDB numbers cannot hold any float)."""
LOG_STAMP_HEADROOM = 86_400.0
"""Least time (seconds) a log item's native TTL stamp lies past the key's expiry when written."""
_MAX_KEY_BYTES = 1024  # a sort key (index items, and ``k`` in ``ss_by_key``)
_MAX_INDEX_BYTES = 1800  # a partition key is at most 2048 bytes, with room for the prefix
_MAX_ITEM_BYTES = 400 * 1024


def _utf8_size(value: object, limit: int, what: str) -> int:
    if not isinstance(value, str) or not value:
        raise InvalidSessionIdError(value, "must be a non-empty string", what=what)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidSessionIdError(value, f"is not valid Unicode text: {exc.reason}", what=what) from exc
    if size > limit:
        raise InvalidSessionIdError(value, f"is {size} bytes in UTF-8, over DynamoDB's {limit}", what=what)
    return size


def check_key(key: object) -> str:
    """``key`` if DynamoDB can hold it as a sort key; a typed error naming it otherwise."""
    _utf8_size(key, _MAX_KEY_BYTES, "key")
    return str(key)


def check_index(index: object) -> str:
    """``index`` if DynamoDB can hold it in a partition key; a typed error naming it otherwise."""
    _utf8_size(index, _MAX_INDEX_BYTES, "index name")
    return str(index)


def data_pk(ns: str, key: str) -> str:
    """Partition key of ``key``'s data item."""
    return f"ns#{ns}#d#{key}"


def index_pk(ns: str, index: str) -> str:
    """Partition key of ``index`` (its items are sorted by key)."""
    return f"ns#{ns}#i#{index}"


def shard_pk(ns: str, shard: int) -> str:
    """Partition key of one shard of a namespace in the listing indexes."""
    return f"ns#{ns}#s#{shard:02d}"


def _shard_of(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) % SHARDS


def number(value: float) -> dict[str, str]:
    """A DynamoDB number holding ``value`` exactly (``repr`` round-trips a float)."""
    return {"N": repr(value)}


def _expiry_attributes(expires_at: float | None) -> dict[str, Any]:
    if expires_at is None:
        return {}
    if not expires_at <= MAX_EXPIRES_AT:
        raise InvalidSessionError(
            f"expiry {expires_at!r} is past 9999-12-31, which the DynamoDB adapter cannot store"
        )
    return {"exp": number(expires_at), "ttl": {"N": str(math.ceil(expires_at))}}


@dataclass(frozen=True, slots=True)
class LogState:
    """A key's log as its data item describes it (see the module docstring).

    ``generation`` is ``None`` while no item was ever written; ``stamp`` is a lower bound of the
    native TTL stamps its items carry, ``None`` when none carries one.
    """

    generation: str | None = None
    length: int = 0
    weight: int = 0
    stamp: int | None = None


EMPTY_LOG = LogState()


def new_generation() -> str:
    """A generation no other log of any key has had (64 random bits)."""
    return secrets.token_hex(8)


def log_sk(generation: str, position: int) -> str:
    """Sort key of the log item at ``position``: zero-padded, so items sort by position."""
    return f"l#{generation}#{position:010d}"


def log_position(sk: str) -> int:
    """The position a log item's sort key names."""
    return int(sk.rsplit("#", 1)[1])


def log_stamp(expires_at: float | None, at: float) -> int | None:
    """The native TTL stamp of log items written at ``at`` for a key expiring at ``expires_at``."""
    if expires_at is None:
        return None
    return math.ceil(expires_at + max(LOG_STAMP_HEADROOM, expires_at - at))


def data_item(
    ns: str,
    key: str,
    value: bytes,
    *,
    version: int,
    expires_at: float | None,
    indexes: Sequence[str],
    value_weight: int,
    log: LogState = EMPTY_LOG,
    touched_at: float | None = None,
) -> dict[str, Any]:
    """The data item of a write, with a fresh token. Raises if DynamoDB could not store it."""
    item: dict[str, Any] = {
        "pk": {"S": data_pk(ns, key)},
        "sk": {"S": DATA_SK},
        "ver": {"N": str(version)},
        "tok": {"S": secrets.token_hex(8)},
        "gp": {"S": shard_pk(ns, _shard_of(key))},
        "k": {"S": key},
        "vw": {"N": str(value_weight)},
        "len": {"N": str(log.length)},
        "lw": {"N": str(log.weight)},
        **_expiry_attributes(expires_at),
    }
    if log.generation is not None:
        item["gen"] = {"S": log.generation}
    if log.stamp is not None:
        item["lttl"] = {"N": str(log.stamp)}
    if touched_at is not None:
        item["ta"] = number(touched_at)
    if indexes:
        item["idx"] = {"L": [{"S": index} for index in indexes]}
    _add_binary(item, "val", value, key, part=None)
    return item


def log_item(
    ns: str,
    key: str,
    generation: str,
    position: int,
    value: bytes,
    stamp: int | None,
    *,
    append_id: str | None = None,
) -> dict[str, Any]:
    """The log item holding ``value`` at ``position``. Raises if DynamoDB could not store it.

    ``append_id`` names the append that writes it (so that append can recognise its own work).
    """
    item: dict[str, Any] = {"pk": {"S": data_pk(ns, key)}, "sk": {"S": log_sk(generation, position)}}
    if stamp is not None:
        item["ttl"] = {"N": str(stamp)}
    if append_id is not None:
        item["a"] = {"S": append_id}
    _add_binary(item, "v", value, key, part=f"log item {position}")
    return item


def _add_binary(item: dict[str, Any], name: str, value: bytes, key: str, *, part: str | None) -> None:
    room = _MAX_ITEM_BYTES - item_size(item) - len(name)
    if len(value) > room:
        raise SessionTooLargeError(key, len(value), room, part=part, bound="DynamoDB's 400 KB item size")
    item[name] = {"B": value}


def index_item(ns: str, index: str, key: str, expires_at: float | None) -> dict[str, Any]:
    """The item listing ``key`` in ``index``, expiring with it."""
    return {"pk": {"S": index_pk(ns, index)}, "sk": {"S": key}, **_expiry_attributes(expires_at)}


def item_size(item: Mapping[str, Any]) -> int:
    """An upper bound of DynamoDB's size of ``item`` (attribute names and values)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode("utf-8")) + _value_size(value)
    return total


def _value_size(value: Mapping[str, Any]) -> int:
    if "S" in value:
        return len(value["S"].encode("utf-8"))
    if "N" in value:
        return 21  # DynamoDB's largest number
    if "L" in value:
        return 3 + sum(1 + _value_size(element) for element in value["L"])
    return len(value.get("B", b""))


@dataclass(frozen=True, slots=True)
class Record:
    """What a data item says about its key: version, expiry, indexes, write token and log.

    ``value_weight`` is ``None`` on items written before weights (the value's length counts).
    """

    version: int
    expires_at: float | None
    indexes: tuple[str, ...]
    token: str
    log: LogState = EMPTY_LOG
    value_weight: int | None = None
    touched_at: float | None = None

    ATTRIBUTES: ClassVar[tuple[str, ...]] = (
        "ver",
        "tok",
        "exp",
        "idx",
        "gen",
        "len",
        "lw",
        "lttl",
        "vw",
        "ta",
    )
    """What :meth:`parse` reads: a projection of these (no value) is enough."""

    @classmethod
    def parse(cls, item: Mapping[str, Any], key: str) -> Record:
        """Read a data item (or its projection); anything else is corrupt, naming ``key``."""
        try:
            log = LogState(
                str(item["gen"]["S"]) if "gen" in item else None,
                int(item["len"]["N"]) if "len" in item else 0,
                int(item["lw"]["N"]) if "lw" in item else 0,
                int(item["lttl"]["N"]) if "lttl" in item else None,
            )
            return cls(
                int(item["ver"]["N"]),
                float(item["exp"]["N"]) if "exp" in item else None,
                tuple(str(element["S"]) for element in item.get("idx", {}).get("L", [])),
                str(item["tok"]["S"]),
                log,
                int(item["vw"]["N"]) if "vw" in item else None,
                float(item["ta"]["N"]) if "ta" in item else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSessionError(key, f"DynamoDB item is not ours: missing or bad {exc!r}") from exc

    @staticmethod
    def value(item: Mapping[str, Any], key: str) -> bytes:
        """The stored bytes of a data item."""
        body = item.get("val", {}).get("B")
        if not isinstance(body, bytes):
            raise CorruptSessionError(key, "DynamoDB item has no binary value 'val'")
        return body


def listed(item: Mapping[str, Any]) -> tuple[str, float | None]:
    """Key and expiry of an item read from a listing index."""
    try:
        key = str(item["k"]["S"])
        expires_at = float(item["exp"]["N"]) if "exp" in item else None
    except (KeyError, TypeError, ValueError) as exc:
        where = str(item.get("pk", {}).get("S", "?"))
        raise CorruptSessionError(where, f"DynamoDB item is not ours: missing or bad {exc!r}") from exc
    return key, expires_at


def live(record: Record | None, at: float | None = None) -> Record | None:
    """``record`` if it exists and has not expired, else ``None``."""
    return record if record is not None and not is_expired(record.expires_at, at) else None
