"""`python -m ppg_stream.stream.cli ...`: the same as `ppg-stream ...` (e.g. `... dashboard --port 0`)."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
