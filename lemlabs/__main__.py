"""``python -m lemlabs`` runs the command line."""

import sys

from lemlabs.cli import main

if __name__ == "__main__":  # not when a process that scores batches (--jobs) imports it
    sys.exit(main())
