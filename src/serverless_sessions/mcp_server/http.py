"""What the streamable HTTP transport needs beyond the tools: authentication and allowed hosts.

:class:`HttpOptions` refuses the unsafe combinations before anything listens: serving without
authentication needs ``insecure_no_auth``, and that only on a loopback address, where nobody
else can connect. DNS-rebinding protection (the SDK's Host/Origin check) is always on: the
allowed ``Host`` values are the bind address and port, the public URL's host, and whatever
``allowed_hosts`` adds for the names a proxy forwards.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from serverless_sessions.errors import ConfigurationError

__all__ = ["ENDPOINT_PATH", "HttpAuth", "HttpOptions", "is_loopback"]

ENDPOINT_PATH = "/mcp"
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # listening on every interface
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _netloc(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port is None else f"{name}:{port}"


@dataclass(frozen=True)
class HttpAuth:
    """Bearer-token authentication: the verifier, and how the server describes it.

    ``issuer_url`` is the authorization server that issues the tokens, published in the
    protected-resource metadata the 401 answers point to; ``None`` names the server itself,
    which is right for static tokens (the operator issued them).
    """

    verifier: TokenVerifier
    description: str
    issuer_url: str | None = None

    def __post_init__(self) -> None:
        if self.issuer_url is not None:
            _check_url("issuer URL", self.issuer_url)


@dataclass(frozen=True)
class HttpOptions:
    """Where and how the HTTP transport listens (checked when created; see the module docstring).

    ``public_url`` is the endpoint URL as clients reach it (behind a proxy); by default it is
    ``http://HOST:PORT/mcp``. ``allowed_hosts`` entries are ``NAME`` (any port, or none, as a
    proxy on a standard port forwards it) or ``NAME:PORT``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    auth: HttpAuth | None = None
    insecure_no_auth: bool = False
    allowed_hosts: tuple[str, ...] = ()
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.auth is None and not self.insecure_no_auth:
            raise ConfigurationError(
                "refusing to serve HTTP without authentication: give --tokens-file PATH (or "
                "SERVERLESS_SESSIONS_MCP_TOKENS_FILE) or --token-verifier MODULE:FACTORY; "
                "--insecure-no-auth serves without it, on a loopback host only"
            )
        if self.auth is not None and self.insecure_no_auth:
            raise ConfigurationError("--insecure-no-auth contradicts the authentication configured")
        if self.insecure_no_auth and not is_loopback(self.host):
            raise ConfigurationError(
                f"--insecure-no-auth is allowed on a loopback host only (127.0.0.1, ::1, localhost), "
                f"not {self.host!r}: configure tokens to listen there"
            )
        if self.public_url is not None:
            _check_url("public URL", self.public_url)
        self._allowed()  # refuses a malformed allowed host now, not on the first request

    @property
    def url(self) -> str:
        """The endpoint URL clients use (with ``/mcp``)."""
        if self.public_url is not None:
            return self.public_url
        host = self.host
        if host in _WILDCARDS:  # listening everywhere: this machine reaches it on loopback
            host = "::1" if host == "::" else "127.0.0.1"
        return f"http://{_netloc(host, self.port)}{ENDPOINT_PATH}"

    def auth_settings(self) -> AuthSettings | None:
        """The SDK's resource-server settings (``None`` without authentication).

        Tokens are not checked against the resource URL: a static token names no resource, and
        a verifier of your own checks its tokens' audience itself.
        """
        if self.auth is None:
            return None
        parts = urlsplit(self.url)
        return AuthSettings.model_validate(
            {
                "issuer_url": self.auth.issuer_url or f"{parts.scheme}://{parts.netloc}",
                "resource_server_url": self.url,
                "validate_token_resource": False,
            }
        )

    def transport_security(self) -> TransportSecuritySettings:
        """The SDK's DNS-rebinding protection: the Host and Origin headers it accepts."""
        hosts, origins = self._allowed()
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )

    def describe(self, *, allow_configure: bool) -> str:
        """The startup line: endpoint, authentication, reconfiguration and allowed hosts."""
        auth = (
            self.auth.description
            if self.auth is not None
            else "NONE (--insecure-no-auth: every caller sees every session)"
        )
        configure = "allowed" if allow_configure else "off"
        if self.auth is not None and allow_configure:
            configure = "admin principals only"
        return (
            f"serverless-sessions MCP server at {self.url} (listening on "
            f"{_netloc(self.host, self.port)}); auth: {auth}; storage reconfiguration: {configure}; "
            f"allowed Host headers: {', '.join(self._allowed()[0])}"
        )

    def _allowed(self) -> tuple[list[str], list[str]]:
        hosts: list[str] = []
        if self.host in _WILDCARDS or is_loopback(self.host):
            hosts += [_netloc(name, self.port) for name in _LOOPBACK_NAMES]
        if self.host not in _WILDCARDS and _netloc(self.host, self.port) not in hosts:
            hosts.append(_netloc(self.host, self.port))
        if self.public_url is not None:
            hosts.append(urlsplit(self.public_url).netloc.rpartition("@")[2])
        for value in self.allowed_hosts:
            hosts += _host_patterns(value)
        hosts = list(dict.fromkeys(hosts))
        origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
        return hosts, origins


def _host_patterns(value: str) -> list[str]:
    """``NAME`` -> itself and ``NAME:*``; ``NAME:PORT`` -> itself (IPv6 in brackets)."""
    try:
        parts = urlsplit(f"//{value.removesuffix(':*')}")
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.hostname or parts.path or parts.username is not None:
        raise ConfigurationError(f"allowed host {value!r}: expected NAME or NAME:PORT")
    name = _netloc(parts.hostname, None)
    return [_netloc(parts.hostname, port)] if port is not None else [name, f"{name}:*"]


def _check_url(what: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid or parts.query or parts.fragment:
        raise ConfigurationError(f"{what} {url!r}: expected http(s)://HOST[:PORT][/PATH]")
