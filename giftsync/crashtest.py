"""``python -m giftsync.crashtest``: the crash matrix, fault soak, two-daemon and guessing
runs of issue 6 (giftsync/verify/crashtest.py; ``scripts/crashtest``)."""
import sys

from .verify.crashtest import main

if __name__ == "__main__":
    sys.exit(main())
