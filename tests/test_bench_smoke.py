"""The benchmark suite must keep running: ``bench/run.py --smoke`` writes a row for every case.

Needs the shared Redis at 127.0.0.1:6379 and ``redis-server`` on PATH, like the Redis contract
tests; without them the run reports errors and this test fails (it never skips).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_smoke_run_writes_every_case_row(tmp_path: Path) -> None:
    listed = _run("--list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    case_ids = listed.stdout.split()
    assert len(case_ids) >= 20, case_ids

    out = tmp_path / "RESULTS.md"
    done = _run("--smoke", "--out", str(out), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    text = out.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    reported = [row.split("`")[1] for row in rows]
    assert reported == case_ids
    assert all(row.rstrip().endswith(("| pass |", "| **MISS** |")) for row in rows), rows
    assert "Command: `" in text and "--smoke" in text
    for fact in ("CPU", "Python", "Redis server", "redis"):
        assert f"| {fact}" in text
    assert (tmp_path / "results.png").stat().st_size > 1000
