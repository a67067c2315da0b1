"""The benchmark suite must keep running: ``bench/run.py --smoke`` measures every case.

Needs the shared Redis at 127.0.0.1:6379, the shared PostgreSQL at 127.0.0.1:5432 and
``redis-server`` on PATH, like the adapter tests; without them the run reports errors and this
test fails (it never skips). Speed is not asserted: a smoke run only proves each case runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
RATIO = re.compile(r"\*\*\d+\.\d\d\u00d7\*\*")  # a measured ratio, bold, e.g. 0.93 and the sign


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(RUN), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_smoke_run_measures_every_case(tmp_path: Path) -> None:
    listed = _run("--list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    case_ids = listed.stdout.split()
    assert case_ids, "no cases listed"

    out = tmp_path / "RESULTS.md"
    done = _run("--smoke", "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]

    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[2].startswith("Command: `") and "--smoke" in text.splitlines()[2]
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    assert list(rows) == case_ids
    assert all(RATIO.search(row) for row in rows.values()), [r for r in rows.values() if not RATIO.search(r)]
