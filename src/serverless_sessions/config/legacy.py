"""The original module's backend configs, and the ``legacy+...`` URLs that name them.

Users hold data in the original layouts (BACKGROUND §1); the legacy storages in
:mod:`serverless_sessions.storage.legacy` read it, each built from its original config dict.
These models record those dicts exactly — key names and defaults as the original had them — so
an old config file means the same thing here as it did there, and a URL can carry the same
information for ``migrate`` and the CLI::

    legacy+local:///abs/storage_dir
    legacy+redis://[:PASSWORD@]host[:port][/db][?key_prefix=...]
    legacy+s3://[ACCESS_KEY_ID:SECRET@]bucket[/key_prefix][?region=...&endpoint_url=...]

For S3 the path after the bucket is the key prefix verbatim (``/`` alone: an empty prefix;
nothing: the original default ``sessions/``). Each model also knows its equivalent in the new
format (``new_section``): the storage to migrate to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from serverless_sessions.backends import server_netloc, url_query
from serverless_sessions.config.documents import validation_problems
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.ids import validate_namespace

__all__ = [
    "LEGACY_MODELS",
    "LegacyConfig",
    "LegacyLocal",
    "LegacyRedis",
    "LegacyS3",
    "converted_key_prefix",
    "legacy_heads",
    "parse_legacy_url",
]


def _clear(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class _Legacy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]

    def config(self) -> dict[str, Any]:
        """The original constructor's config dict (secrets in clear, unset options left out)."""
        return {name: _clear(value) for name, value in self if value is not None}


class LegacyLocal(_Legacy):
    """``LocalFileStorage`` config: one ``{storage_dir}/{id}.json.gz`` file per session."""

    kind: ClassVar[str] = "local"
    storage_dir: Path = Field(default=Path("~/.claude/data/sessions"), validate_default=True)

    @field_validator("storage_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # The original expanded "~" and resolved against the working directory at start-up;
        # fixing the path now keeps a later chdir from moving the data.
        return value.expanduser().absolute()

    def config(self) -> dict[str, Any]:
        """The original config dict (``storage_dir`` as a string, as the original took it)."""
        return {"storage_dir": str(self.storage_dir)}

    def url(self) -> str:
        """``legacy+local:///abs/dir``."""
        return "legacy+local://" + quote(str(self.storage_dir))

    def new_section(self) -> dict[str, Any]:
        """The new-format equivalent: a SQLite file next to the directory (``<dir>.db``).

        The file (and its ``-wal``/``-shm`` companions) lies outside the directory, which the
        legacy storage alone reads (``/.db`` for ``/``, a dot-file it skips).
        """
        return {"provider": "sqlite", "path": f"{self.storage_dir}.db"}


_CONVERTED_SUFFIX = ".v2"
_NOT_IN_PREFIX = re.compile(r"[^A-Za-z0-9_.\-]")
_MAX_PREFIX = 64


def legacy_heads(key_prefix: str) -> frozenset[str]:
    """What every key the legacy ``RedisStorage`` reads holds before its first colon.

    That storage reads and writes only keys beginning with ``{key_prefix}session:`` or
    ``{key_prefix}index:``; both contain a colon, so their text before the first colon depends
    on ``key_prefix`` alone.
    """
    return frozenset((key_prefix + marker).partition(":")[0] for marker in ("session:", "index:"))


def converted_key_prefix(key_prefix: str) -> str:
    """The Redis adapter's ``key_prefix`` for data moving out of the legacy ``key_prefix``.

    ``session_mgmt:`` becomes ``session_mgmt.v2``: the old prefix without its trailing colons,
    each character the new prefix cannot hold (``A-Z a-z 0-9 _ . -``) replaced by ``_``,
    plus ``.v2`` (``ss.v2`` for an empty prefix), cut to the 64 characters a prefix may have.

    Why the two layouts can never share a key: every key of the new layout is
    ``{prefix}:{namespace}:...`` and the prefix holds no colon, so its text before the first
    colon is the prefix itself; every key of the legacy layout has one of
    :func:`legacy_heads` there. The prefix returned is never one of them (the one spelling that
    could be, a 64-character head ending in ``.v2``, gets ``.V2``), so for every namespace,
    session id, user and project, neither storage can read, list, overwrite or delete a key
    of the other — even on the same Redis database. (Keeping the old prefix, as earlier
    versions did, put the new keys of namespace ``session`` under ``session_mgmt:session:``,
    where the legacy storage lists its sessions.)
    """
    base = _NOT_IN_PREFIX.sub("_", key_prefix.rstrip(":")) or "ss"
    stem = base[: _MAX_PREFIX - len(_CONVERTED_SUFFIX)]
    prefix = stem + _CONVERTED_SUFFIX
    if prefix in legacy_heads(key_prefix):
        prefix = stem + _CONVERTED_SUFFIX.upper()
    return validate_namespace(prefix)


class LegacyRedis(_Legacy):
    """``RedisStorage`` config: ``{key_prefix}session:{id}`` plus index sets."""

    kind: ClassVar[str] = "redis"
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    password: SecretStr | None = None
    key_prefix: str = "session_mgmt:"

    def url(self) -> str:
        """``legacy+redis://[:PASSWORD@]host:port/db?key_prefix=...``."""
        parts = {"host": self.host, "port": self.port, "password": _clear(self.password)}
        netloc = server_netloc(parts, self.port)
        query = url_query({"key_prefix": self.key_prefix})
        return urlunsplit(("legacy+redis", netloc, f"/{self.db}", query, ""))

    def new_section(self) -> dict[str, Any]:
        """The new-format equivalent: a Redis cache on the same server and database.

        Its prefix is :func:`converted_key_prefix`, so the two layouts never share a key.
        """
        section: dict[str, Any] = {
            "provider": "redis",
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "key_prefix": converted_key_prefix(self.key_prefix),
        }
        if self.password is not None:
            section["password"] = self.password.get_secret_value()
        return section


class LegacyS3(_Legacy):
    """``S3Storage`` config: ``{key_prefix}{id}.json.gz`` objects with metadata.

    ``endpoint_url`` was not in the original; it is accepted so S3-compatible servers work.
    """

    kind: ClassVar[str] = "s3"
    bucket_name: str = Field(min_length=3)
    region: str = "us-east-1"
    key_prefix: str = "sessions/"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    endpoint_url: str | None = None

    def url(self) -> str:
        """``legacy+s3://[KEY:SECRET@]bucket/key_prefix?region=...[&endpoint_url=...]``."""
        auth = ""
        if self.access_key_id is not None or self.secret_access_key is not None:
            secret = _clear(self.secret_access_key) or ""
            auth = f"{quote(self.access_key_id or '', safe='')}:{quote(secret, safe='')}@"
        query = url_query({"region": self.region, "endpoint_url": self.endpoint_url})
        path = "/" + quote(self.key_prefix)
        return urlunsplit(("legacy+s3", f"{auth}{self.bucket_name}", path, query, ""))

    def new_section(self) -> dict[str, Any]:
        """The new-format equivalent: an S3 cache in the same bucket, under the same prefix.

        The layouts cannot collide: the legacy storage reads only names ending in ``.json.gz``
        whose id (no ``/``) follows the prefix directly, while every object of the S3 cache
        lies in a ``ns-.../`` folder below the prefix and ends in a percent-encoded segment
        without dots. AWS keys are not part of it: the S3 cache reads the standard AWS
        credential chain.
        """
        section = {
            "provider": "s3",
            "bucket": self.bucket_name,
            "prefix": self.key_prefix.strip("/"),
            "region": self.region,
        }
        return section | ({"endpoint_url": self.endpoint_url} if self.endpoint_url else {})


LegacyConfig = LegacyLocal | LegacyRedis | LegacyS3

LEGACY_MODELS: Mapping[str, type[LegacyConfig]] = MappingProxyType(
    {"local": LegacyLocal, "redis": LegacyRedis, "s3": LegacyS3}
)


# Query parameters each legacy scheme accepts (each names a config key). Anything else is refused.
_QUERY_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "local": frozenset(),
        "redis": frozenset({"key_prefix"}),
        "s3": frozenset({"region", "endpoint_url"}),
    }
)


def _authority(kind: str, netloc: str) -> dict[str, Any]:
    userinfo, _, hostinfo = netloc.rpartition("@")
    user, _, secret = userinfo.partition(":")
    if kind == "s3":
        auth = {"access_key_id": unquote(user), "secret_access_key": unquote(secret)}
        return {"bucket_name": hostinfo} | (auth if userinfo else {})
    if kind == "local":
        return {}
    if user:
        raise ConfigurationError("legacy+redis URL takes no user name (the original had none)")
    host, port = hostinfo, None
    if hostinfo.startswith("["):
        host, _, rest = hostinfo[1:].partition("]")
        port = rest[1:] or None
    elif ":" in hostinfo:
        host, _, port = hostinfo.rpartition(":")
    return {"host": unquote(host), "port": port, "password": unquote(secret) if secret else None}


def _path_values(kind: str, path: str) -> dict[str, Any]:
    if kind == "local":
        return {"storage_dir": unquote(path)}
    if kind == "s3":
        return {"key_prefix": unquote(path[1:])} if path else {}
    return {"db": path[1:]} if path.strip("/") else {}


def parse_legacy_url(url: str) -> LegacyConfig:
    """The legacy config a ``legacy+...`` URL names; ConfigurationError names the bad part."""
    split = urlsplit(url)
    kind = split.scheme.lower().removeprefix("legacy+")
    if not split.scheme.lower().startswith("legacy+") or kind not in LEGACY_MODELS:
        raise ConfigurationError(
            f"not a legacy storage URL (scheme {split.scheme!r}); use legacy+local:///dir, "
            "legacy+redis://host:port/db or legacy+s3://bucket/prefix"
        )
    if split.fragment:
        raise ConfigurationError(f"legacy+{kind} URL must not have a #fragment")
    if kind == "local" and (split.netloc or not split.path.startswith("/")):
        raise ConfigurationError("legacy+local URL needs an absolute directory: legacy+local:///dir")
    raw = _authority(kind, split.netloc) | _path_values(kind, split.path)
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        if name not in _QUERY_KEYS[kind] or name in raw:
            raise ConfigurationError(f"unknown or repeated legacy+{kind} URL parameter {name!r}")
        raw[name] = value
    try:
        return LEGACY_MODELS[kind].model_validate(
            {name: value for name, value in raw.items() if value is not None}
        )
    except ValidationError as exc:
        problems = validation_problems(exc, lambda loc: f"legacy+{kind} URL {'.'.join(loc)}")
        raise ConfigurationError(problems) from None
