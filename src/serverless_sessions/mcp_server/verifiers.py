"""Token verifiers for the HTTP transport: static tokens from a file, or one of your own.

The SDK's bearer middleware hands every request's token to a
:class:`~mcp.server.auth.provider.TokenVerifier` and answers 401 when it returns ``None``. What
the returned :class:`~mcp.server.auth.provider.AccessToken` must carry for this server is in
:mod:`.access`: ``subject`` (or ``client_id``) is the principal, and the
:data:`~.access.ADMIN_SCOPE` scope makes it an admin. So an OAuth introspection or JWT
verifier plugs in unchanged: ``serve --token-verifier package.module:factory`` calls
``factory()`` (no arguments; read your settings from the environment) and uses what it returns.

The static verifier never keeps a token: it keeps SHA-256 digests and compares the digest of
the presented token with *every* entry through :func:`hmac.compare_digest`, so neither the
position of a match nor how many leading bytes agree shows in the time an answer takes.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mcp.server.auth.provider import AccessToken, TokenVerifier

from serverless_sessions.errors import ConfigurationError, InvalidSessionIdError
from serverless_sessions.ids import validate_owner_id
from serverless_sessions.mcp_server.access import ADMIN_SCOPE
from serverless_sessions.mcp_server.http import HttpAuth

__all__ = ["MIN_TOKEN_LENGTH", "StaticTokenVerifier", "configured_auth", "load_token_verifier"]

MIN_TOKEN_LENGTH = 16
"""Shorter static tokens are refused: they could be guessed."""

# RFC 6750 b64token: what may follow "Bearer " in an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ENTRY_FIELDS = ("principal", "admin")


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: str
    admin: bool
    number: int  # 1-based position in the file: names the entry without naming its token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class StaticTokenVerifier(TokenVerifier):
    """Bearer tokens listed in a JSON file: ``{"<token>": {"principal": "alice", "admin": false}}``.

    Several tokens may name the same principal (to rotate one without downtime).
    """

    def __init__(self, entries: Mapping[str, tuple[str, bool]], *, source: str = "tokens") -> None:
        """Tokens mapped to (principal, admin); ``source`` names them in errors and reprs."""
        self._source = source
        self._entries = tuple(
            _Entry(_digest(token), principal, admin, number)
            for number, (token, (principal, admin)) in enumerate(entries.items(), start=1)
        )
        if not self._entries:
            raise ConfigurationError(f"{source}: no tokens: add at least one")

    @classmethod
    def from_file(cls, path: Path) -> StaticTokenVerifier:
        """Read and validate a tokens file; any problem is a one-line :class:`ConfigurationError`.

        Errors name the file and the entry (by position and principal), never a token.
        """
        source = f"tokens file {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigurationError(f"cannot read {source}: {reason}") from None
        try:
            pairs = json.loads(text, object_pairs_hook=_Pairs)
        except json.JSONDecodeError as exc:
            # The message has a position, not the text: the text holds tokens.
            raise ConfigurationError(
                f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(pairs, _Pairs):
            raise ConfigurationError(
                f'{source} must hold a JSON object {{"<token>": {{"principal": "alice", "admin": false}}}}'
            )
        entries: dict[str, tuple[str, bool]] = {}
        numbers: dict[str, int] = {}
        for number, (token, value) in enumerate(pairs, start=1):
            principal, admin = _entry(source, number, value)
            where = f"{source}: entry {number} (principal {principal!r})"
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigurationError(f"{where}: the token is shorter than {MIN_TOKEN_LENGTH} characters")
            if not _BEARER_TOKEN.fullmatch(token):
                raise ConfigurationError(
                    f"{where}: the token has characters a bearer token cannot carry "
                    "(use letters, digits and -._~+/)"
                )
            if token in numbers:
                raise ConfigurationError(f"{where}: the same token as entry {numbers[token]}")
            numbers[token] = number
            entries[token] = (principal, admin)
        return cls(entries, source=source)

    def describe(self) -> str:
        """What the startup line says about these tokens (never a token)."""
        principals = {entry.principal for entry in self._entries}
        admins = {entry.principal for entry in self._entries if entry.admin}
        return (
            f"bearer tokens from {self._source} ({len(self._entries)} token(s) for "
            f"{len(principals)} principal(s), {len(admins)} admin)"
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        """The principal of ``token``, or ``None`` (the middleware then answers 401)."""
        presented = _digest(token)
        found: _Entry | None = None
        for entry in self._entries:  # no early exit: every entry is compared every time
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        if found is None:
            return None
        return AccessToken(
            token=f"{self._source} entry {found.number}",  # the middleware keeps it; not the secret
            client_id=found.principal,
            subject=found.principal,
            scopes=[ADMIN_SCOPE] if found.admin else [],
        )

    def __repr__(self) -> str:
        return f"StaticTokenVerifier({self._source}, {len(self._entries)} token(s))"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its pair list, so a token given twice is seen rather than dropped."""


def _entry(source: str, number: int, value: Any) -> tuple[str, bool]:
    """(principal, admin) of one entry's value (a JSON object, read as a pair list)."""
    where = f"{source}: entry {number}"
    if not isinstance(value, _Pairs):
        raise ConfigurationError(f'{where}: must be an object like {{"principal": "alice", "admin": false}}')
    fields = dict(value)
    unknown = sorted(set(fields) - set(_ENTRY_FIELDS))
    if unknown:
        raise ConfigurationError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(_ENTRY_FIELDS)})")
    if "principal" not in fields:
        raise ConfigurationError(f"{where}: 'principal' is missing")
    try:
        principal = validate_owner_id(fields["principal"], what="principal")
    except InvalidSessionIdError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    admin = fields.get("admin", False)
    if not isinstance(admin, bool):
        raise ConfigurationError(f"{where} (principal {principal!r}): 'admin' must be true or false")
    return principal, admin


def load_token_verifier(spec: str) -> TokenVerifier:
    """The verifier ``factory()`` returns, for ``spec`` = ``"package.module:factory"``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"token verifier {spec!r}: expected 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"token verifier {spec!r}: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigurationError(f"token verifier {spec!r}: {module_name} has no callable {attribute!r}")
    verifier = factory()
    if not callable(getattr(verifier, "verify_token", None)):
        raise ConfigurationError(
            f"token verifier {spec!r}: {attribute}() returned {type(verifier).__name__}, "
            "which has no verify_token(token) method"
        )
    return cast(TokenVerifier, verifier)


def configured_auth(
    *, tokens_file: Path | None, verifier: str | None, issuer_url: str | None = None
) -> HttpAuth | None:
    """Authentication from ``serve``'s options: a tokens file, a verifier factory, or none."""
    if tokens_file is not None and verifier is not None:
        raise ConfigurationError("give a tokens file or a token verifier, not both")
    if tokens_file is not None:
        static = StaticTokenVerifier.from_file(tokens_file)
        return HttpAuth(static, static.describe(), issuer_url)
    if verifier is not None:
        return HttpAuth(load_token_verifier(verifier), f"bearer tokens checked by {verifier}", issuer_url)
    return None
