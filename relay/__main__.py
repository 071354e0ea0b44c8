"""`python -m relay`: the same as `arrears relay` (the tests' killed relays run this)."""

from __future__ import annotations

import sys

from relay.process import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
