"""What every adapter's URL needs: ONE query-argument parser mechanism, and password masking.

Each adapter declares a read-only table, ``{argument name: parser}`` (as redis-py's
``URL_QUERY_ARGUMENT_PARSERS``); :func:`parse_query` reads a URL's query through it, so every
adapter refuses the same things the same way: an unknown argument (the message lists the known
ones), a repeated one, and a value its parser rejects — each a
:class:`~serverless_sessions.errors.ConfigurationError` naming the argument and the value. A
parser takes the raw text (or, for settings objects that reuse their table, a typed value) and
returns the checked value or raises ``ValueError`` saying what it expected. The shared parsers
below cover what the adapters have in common. A frozen settings dataclass can send every field
through its table too (:func:`check_fields`, :func:`replace_checked`), so a value is refused the
same way whether it came from a URL, a keyword or the constructor.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import SecretStr

from serverless_sessions.errors import ConfigurationError

__all__ = [
    "Parser",
    "boolean",
    "check_fields",
    "integer_in",
    "mask_url",
    "non_empty",
    "optional_text",
    "parse_query",
    "parse_setting",
    "positive_float",
    "positive_int",
    "replace_checked",
    "seconds_in",
    "secret",
]

Parser = Callable[[Any], Any]
_Settings = TypeVar("_Settings")


def parse_query(
    query: str,
    parsers: Mapping[str, Parser],
    *,
    what: str,
    refused: Collection[str] = (),
    where: str = "",
) -> dict[str, Any]:
    """The query arguments of a URL, each checked by its parser in ``parsers``.

    ``what`` names the URL kind in messages (``"Redis"``); ``refused`` lists settings of the
    table a URL must carry in its own syntax instead (a password in a query string would end
    up in access logs); ``where`` (a password-free URL) is added to messages.
    """
    at = f" in {where!r}" if where else ""
    known = sorted(set(parsers) - set(refused))
    values: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name not in parsers or name in refused:
            raise ConfigurationError(f"unknown {what} URL parameter {name!r}{at}; known: {', '.join(known)}")
        if name in values:
            raise ConfigurationError(f"{what} URL parameter {name!r} repeated{at}")
        try:
            values[name] = parsers[name](raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"{what} URL parameter {name!r} has a bad value {raw!r}: {exc}"
            ) from None
    return values


def parse_setting(parsers: Mapping[str, Parser], name: str, value: object, *, what: str) -> Any:
    """``value`` checked by the parser of setting ``name``; a password's value is never shown."""
    try:
        return parsers[name](value)
    except ValueError as exc:
        shown = "" if name == "password" else f" (got {value!r})"
        raise ConfigurationError(f"invalid {what} setting {name!r}: {exc}{shown}") from None


def check_fields(settings: Any, parsers: Mapping[str, Parser], *, what: str) -> None:
    """In a frozen dataclass's ``__post_init__``: replace every field by its checked value."""
    for item in dataclasses.fields(settings):
        checked = parse_setting(parsers, item.name, getattr(settings, item.name), what=what)
        object.__setattr__(settings, item.name, checked)


def replace_checked(
    settings: _Settings, parsers: Mapping[str, Parser], overrides: Mapping[str, object], *, what: str
) -> _Settings:
    """A copy of a frozen settings dataclass with ``overrides`` (unknown names refused)."""
    unknown = sorted(set(overrides) - set(parsers))
    if unknown:
        raise ConfigurationError(f"unknown {what} setting(s): {', '.join(map(repr, unknown))}")
    return dataclasses.replace(settings, **overrides)  # type: ignore[type-var]


def non_empty(value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def optional_text(value: object) -> str | None:
    """A non-empty string, or ``None`` for nothing (``None`` or ``""``)."""
    return None if value is None or value == "" else non_empty(value)


def boolean(value: object) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``) or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def integer_in(low: int, high: int) -> Parser:
    """A parser of whole numbers from ``low`` to ``high`` (text of digits, or an int)."""

    def parse(value: object) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdecimal():
            number = int(value)
        if number is None or not low <= number <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return number

    return parse


def _number(value: object) -> float:
    """``value`` as a float (NaN for anything that is not a number or its text)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def seconds_in(high: float, *, zero: bool = False) -> Parser:
    """A parser of seconds up to ``high``: more than 0, or from 0 with ``zero``."""

    def parse(value: object) -> float:
        number = _number(value)
        if not (0 <= number <= high and (zero or number > 0)):
            lowest = "from 0" if zero else "more than 0 and"
            raise ValueError(f"expected seconds, {lowest} at most {high:g}")
        return number

    return parse


def positive_float(value: object) -> float:
    """A finite number above 0 (text or a number)."""
    number = _number(value)
    if not 0 < number < math.inf:
        raise ValueError("expected a positive number")
    return number


def positive_int(value: object) -> int:
    """A whole number of at least 1 (text of digits or an int)."""
    return integer_in(1, 2**31 - 1)(value)  # type: ignore[no-any-return]


def secret(value: object) -> SecretStr | None:
    """A password: kept as ``SecretStr``; only the type of a wrong value is ever shown."""
    if value is None or isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        return SecretStr(value)
    raise ValueError(f"expected a string, got a {type(value).__name__}")


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***``; safe for logs, reprs and errors.

    Works on text that does not parse as a URL too, since such text is what error messages show.
    """
    if not url:
        return url
    scheme, separator, rest = url.partition("://")
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostinfo = rest[:end].rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    return f"{scheme}{separator}{userinfo}{at}{hostinfo}{rest[end:]}"
