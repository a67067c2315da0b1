"""Private ``redis-server`` processes for tests: 127.0.0.1, free ports, temp dirs, always stopped.

Everything here is synchronous (subprocesses and blocking sockets), so it works in fixtures of
any scope regardless of the event loop. Every wait is bounded; every context manager stops what
it started, even when the body fails. A missing ``redis-server`` binary fails the test.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
START_TIMEOUT = 10.0


def free_port(*, with_bus: bool = False) -> int:
    """A loopback port nobody listens on (and, ``with_bus``, whose +10000 cluster port is free)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not with_bus:
            return port
        if port < 55000:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair found")


def command(port: int, *args: str, tls: ssl.SSLContext | None = None, timeout: float = 2.0) -> bytes:
    """Send one inline command over a raw socket and return the raw reply (for readiness checks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        conn = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        conn.sendall((" ".join(args) + "\r\n").encode())
        reply = b""
        deadline = time.monotonic() + timeout
        while not reply.endswith(b"\r\n") and time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def wait_until(check: Callable[[], object], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``check()`` until it is truthy; fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last!r})")


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) process that can be stopped, killed and started again."""

    port: int
    directory: Path
    args: list[str]
    tls: ssl.SSLContext | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, *self.args], cwd=self.directory, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        # PONG, or NOAUTH from a server with a password: either way it has loaded its data.
        ready = (b"+PONG", b"-NOAUTH")
        wait_until(lambda: self._alive() and self.command("PING").startswith(ready), f"redis on {self.port}")
        return self

    def _alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            log = (self.directory / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
        return True

    def command(self, *args: str) -> bytes:
        return command(self.port, *args, tls=self.tls)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL with ``sig=signal.SIGKILL``); bounded wait."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def server_args(port: int, directory: Path, *extra: str) -> list[str]:
    """Arguments of a throwaway server: loopback only, no RDB snapshots, files in ``directory``."""
    return ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
            "--appendonly", "no", *extra]  # fmt: skip


@contextmanager
def running_redis(directory: Path, *extra: str, port: int | None = None) -> Iterator[RedisProcess]:
    """One private standalone server; later ``extra`` arguments override the defaults."""
    port = port or free_port()
    server = RedisProcess(port, directory, server_args(port, directory, *extra))
    try:
        yield server.start()
    finally:
        server.stop()


# -- Cluster ----------------------------------------------------------------------------------


@contextmanager
def running_cluster(directory: Path, masters: int = 3) -> Iterator[list[RedisProcess]]:
    """``masters`` cluster nodes, joined with ``redis-cli --cluster create``; state ok on return."""
    with ExitStack() as stack:
        nodes = []
        for number in range(masters):
            port = free_port(with_bus=True)
            node_dir = directory / f"node{number}"
            node_dir.mkdir(parents=True)
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000")  # fmt: skip
            nodes.append(stack.enter_context(running_redis(node_dir, *extra, port=port)))
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        wait_until(lambda: all(b"cluster_state:ok" in n.command("CLUSTER", "INFO") for n in nodes), "cluster")
        yield nodes


# -- Sentinel ---------------------------------------------------------------------------------


@dataclass
class SentinelSetup:
    master: RedisProcess
    replica: RedisProcess
    sentinel: RedisProcess
    name: str = "mymaster"

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.name}/0"

    def master_port(self) -> int:
        reply = self.sentinel.command("SENTINEL", "get-master-addr-by-name", self.name)
        return int(reply.split(b"\r\n")[-2])


@contextmanager
def running_sentinel(directory: Path) -> Iterator[SentinelSetup]:
    """A master, one replica and one sentinel (quorum 1, 1 s down-after); replica known on return."""
    with ExitStack() as stack:
        master = stack.enter_context(running_redis(directory / "master"))
        replica = stack.enter_context(
            running_redis(directory / "replica", "--replicaof", "127.0.0.1", str(master.port))
        )
        port = free_port()
        sentinel_dir = directory / "sentinel"
        sentinel_dir.mkdir(parents=True)
        config = sentinel_dir / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 10000\n"
        )
        sentinel = RedisProcess(port, sentinel_dir, [str(config), "--sentinel"])
        stack.callback(sentinel.stop)
        sentinel.start()
        setup = SentinelSetup(master, replica, sentinel)
        wait_until(lambda: b"master_link_status:up" in replica.command("INFO", "replication"), "replica")
        wait_until(
            lambda: str(replica.port).encode() in sentinel.command("SENTINEL", "replicas", "mymaster"),
            "sentinel discovering the replica",
        )
        yield setup


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting only it must fail


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(name: str, key: ec.EllipticCurvePrivateKey) -> Path:
        path = directory / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def issue(
        name: str,
        subject: str,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        *,
        usage: Sequence[x509.ObjectIdentifier] = (),
        san: Sequence[x509.GeneralName] = (),
    ) -> tuple[Path, x509.Name, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        issuer_name, signer = issuer or (subject_name, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject_name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        )
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        path = directory / f"{name}.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(f"{name}.key", key)
        return path, subject_name, key

    ca, ca_name, ca_key = issue("ca", "serverless-sessions test CA", None)
    other_ca, _, _ = issue("other-ca", "unrelated CA", None)
    server, _, _ = issue(
        "server",
        "localhost",
        (ca_name, ca_key),
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client, _, _ = issue("client", "test client", (ca_name, ca_key), usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return TlsFiles(ca, server, directory / "server.key", client, directory / "client.key", other_ca)


@contextmanager
def running_tls_redis(directory: Path, files: TlsFiles, *, client_certs: bool) -> Iterator[RedisProcess]:
    """A TLS-only server (``--port 0``); ``client_certs`` makes it demand a client certificate."""
    port = free_port()
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.client_cert), str(files.client_key))
    args = server_args(0, directory, "--tls-port", str(port), "--tls-cert-file", str(files.server_cert),
                       "--tls-key-file", str(files.server_key), "--tls-ca-cert-file", str(files.ca),
                       "--tls-auth-clients", "yes" if client_certs else "no")  # fmt: skip
    server = RedisProcess(port, directory, args, tls=context)
    try:
        yield server.start()
    finally:
        server.stop()
