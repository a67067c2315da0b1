"""Typed, frozen settings, read from ``SERVERLESS_SESSIONS_*`` environment variables.

Precedence, highest first: explicit keyword arguments, environment variables, the config file
(see :mod:`serverless_sessions.config_files`), defaults. With nothing configured the storage is
the embedded SQLite file under the user's data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serverless_sessions.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "StorageSettings", "load_settings", "mask_url"]

ENV_PREFIX = "SERVERLESS_SESSIONS_"


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (safe for logs, reprs and errors)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


class StorageSettings(BaseSettings):
    """Everything needed to build a storage; secrets are masked in every repr."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    url: SecretStr | None = Field(
        default=None,
        description="Storage URL: memory://, sqlite:///abs/path.db, redis://, rediss://, "
        "redis+sentinel://, s3://bucket/prefix. Unset: SQLite under the user data directory.",
    )
    namespace: str = "session"
    default_ttl: float | None = Field(default=86400, gt=0, description="Seconds; new sessions.")
    max_lifetime: float | None = Field(
        default=None, gt=0, description="Absolute lifetime in seconds, next to the idle TTL."
    )
    compression: Literal["none", "zstd", "brotli"] = "zstd"
    compression_threshold: int = Field(default=512, ge=0)
    zstd_level: int = Field(default=3, ge=1, le=22)
    brotli_quality: int = Field(default=11, ge=0, le=11)
    max_session_bytes: int = Field(default=1024 * 1024, ge=64)
    timeout: float = Field(default=5.0, gt=0, le=300, description="Backend timeout, seconds.")
    sqlite_path: Path | None = None
    encryption_keys: SecretStr | None = Field(
        default=None, description="Comma-separated KEY_ID:BASE64_32_BYTES; newest last."
    )
    mutate_retries: int = Field(default=200, ge=1, le=10_000)

    @field_validator("url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def url_value(self) -> str | None:
        """The storage URL in clear (only for building clients)."""
        return None if self.url is None else self.url.get_secret_value()

    def masked_url(self) -> str | None:
        """The storage URL with its password masked."""
        return mask_url(self.url_value())

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe settings with every secret masked (for ``config show`` and stats)."""
        data = self.model_dump(mode="json")
        data["url"] = self.masked_url()
        data["encryption_keys"] = "***" if self.encryption_keys else None
        return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> StorageSettings:
    """Build settings from keyword overrides, the environment and an optional config file.

    A malformed file or value raises :class:`ConfigurationError` naming the file and field.
    """
    from serverless_sessions.config_files import read_config_file

    file_values: dict[str, Any] = {}
    if config_file is not None:
        file_values = read_config_file(Path(config_file))
    explicit = {key: value for key, value in overrides.items() if value is not None}
    try:
        env_only = StorageSettings()
        from_env = env_only.model_dump(exclude_unset=True)
        return StorageSettings(**{**file_values, **from_env, **explicit})
    except ValidationError as exc:
        source = f" (file {config_file})" if config_file is not None else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings{source}: {problems}") from exc
