"""Why a target is missed and what would reach it: the analysis shown under each miss.

Written from the profiles and decompositions this suite prints (see bench/README.md); the
numbers quoted here are typical of this machine, the run's own numbers are in its table.
"""

from __future__ import annotations

CODEC_MISS = "(analysis pending)"
MEMORY_MISS = "(analysis pending)"
SQLITE_MISS = "(analysis pending)"
STORE_MISS = "(analysis pending)"
RETRIEVE_MISS = "(analysis pending)"
ORIGINAL_MISS = "(analysis pending)"
BULK_MISS = "(analysis pending)"
COLDSTART_MISS = "(analysis pending)"
SCALE_MISS = "(analysis pending)"
