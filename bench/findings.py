"""Performance problems found in src/ while benchmarking, with evidence measured in this run."""

from __future__ import annotations


def findings() -> list[str]:
    return ["(pending)"]
