"""Facts about the machine and software a run measured, for the results file."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

_PACKAGES = (
    "serverless-sessions",
    "pydantic",
    "pydantic-core",
    "zstandard",
    "redis",
    "hiredis",
    "brotli",
    "msgpack",
    "matplotlib",
    "pyinstrument",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit(root: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (uncommitted changes)" if dirty else head


def _redis_server_binary() -> str:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not found"
    return out.split(" v=")[1].split()[0] if " v=" in out else out.strip()


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (this machine is shared: context for the noise)."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_facts(root: Path, redis_versions: dict[str, str]) -> dict[str, str]:
    """CPU, cores, OS, Python, SQLite, Redis servers and library versions."""
    facts = {
        "CPU": _cpu_model(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite library": sqlite3.sqlite_version,
        "git commit": _git_commit(root),
    }
    facts.update(redis_versions)
    facts["redis-server binary (private server)"] = _redis_server_binary()
    facts.update({f"{name}": _version(name) for name in _PACKAGES})
    facts["interpreter"] = sys.executable
    return facts
