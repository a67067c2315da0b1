"""``python -m serverless_sessions``: the same CLI as the ``serverless-sessions`` script.

The demo relies on this to resume a session from a second process with ``sys.executable``,
which works even where the console script is not on ``PATH``.
"""

from __future__ import annotations

import sys

from serverless_sessions.cli import main

if __name__ == "__main__":
    sys.exit(main())
