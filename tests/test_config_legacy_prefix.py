"""A converted Redis config gets a key prefix whose keys the legacy layout can never read.

The legacy ``RedisStorage`` reads ``{key_prefix}session:*`` and ``{key_prefix}index:*``; the new
adapter writes ``P:N:d:<key>``, ``P:N:i:<index>`` and ``P:N:x``. Earlier versions converted
``session_mgmt:`` to ``P = session_mgmt``, so namespace ``session`` wrote ``session_mgmt:session:…``
keys that the legacy storage then listed and failed on (``WRONGTYPE``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from serverless_sessions.adapters.cache.base import validate_namespace
from serverless_sessions.adapters.cache.redis.scripts import KeyLayout
from serverless_sessions.config.legacy import LegacyRedis, converted_key_prefix
from serverless_sessions.config.settings import load_settings

# "session" (the default) and "index" are the namespaces that collided before.
NAMESPACES = st.one_of(
    st.sampled_from(["session", "index"]), st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
)
# Prefixes made of the characters that matter (colons, dots, the ".v2" suffix, "session",
# "index"), up to lengths that force truncation, next to arbitrary text.
KEY_PREFIXES = st.one_of(
    st.text(),
    st.text(alphabet="sv2.:_-", max_size=90),
    st.lists(st.sampled_from(["session", "index", "ss", ".v2", ":", "d", "x", "i"]), max_size=30).map(
        "".join
    ),
)


def legacy_reads(key_prefix: str, key: str) -> bool:
    """Whether the legacy RedisStorage with ``key_prefix`` would list, read or prune ``key``."""
    return key.startswith(f"{key_prefix}session:") or key.startswith(f"{key_prefix}index:")


@given(key_prefix=KEY_PREFIXES, namespace=NAMESPACES, key=st.text(), index=st.text())
def test_no_key_of_the_converted_layout_is_read_by_the_legacy_one(
    key_prefix: str, namespace: str, key: str, index: str
) -> None:
    layout = KeyLayout(converted_key_prefix(key_prefix))
    for name in (layout.data(namespace, key), layout.index(namespace, index), layout.expiry(namespace)):
        assert not legacy_reads(key_prefix, name), (key_prefix, name)


@given(key_prefix=KEY_PREFIXES)
def test_every_legacy_prefix_converts_to_a_valid_redis_prefix(key_prefix: str) -> None:
    prefix = converted_key_prefix(key_prefix)
    assert validate_namespace(prefix) == prefix


def test_the_reported_prefix_and_its_neighbours() -> None:
    assert converted_key_prefix("session_mgmt:") == "session_mgmt.v2"
    assert converted_key_prefix("") == "ss.v2"
    assert converted_key_prefix("tenant:app:") == "tenant_app.v2"
    # The one spelling whose first segment is already the candidate gets the other suffix.
    edge = "a" * 61 + ".v2:"
    assert converted_key_prefix(edge) == "a" * 61 + ".V2"
    assert not legacy_reads(edge, KeyLayout(converted_key_prefix(edge)).data("session", "id"))


def test_an_old_config_with_colons_inside_its_prefix_still_loads(tmp_path: Path) -> None:
    """Such prefixes used to fail conversion, and with it every load of the old file."""
    path = tmp_path / "old.json"
    config = {"host": "127.0.0.1", "port": 6379, "db": 13, "key_prefix": "tenant:app:"}
    path.write_text(json.dumps({"serverless": {"storage_type": "redis", "storage_config": config}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        settings = load_settings(path)
    assert settings.legacy_url_value() == LegacyRedis(**config).url()
    assert settings.url_value() == "redis://127.0.0.1:6379/13?key_prefix=tenant_app.v2"
