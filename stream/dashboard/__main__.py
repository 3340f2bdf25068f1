"""`python -m stream.dashboard ...`: the same as `ppg-stream dashboard ...`."""

from __future__ import annotations

import sys

from stream.cli import main

if __name__ == "__main__":
    sys.exit(main(["dashboard", *sys.argv[1:]]))
