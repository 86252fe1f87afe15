"""``python -m lemlabs`` runs the command line."""

import sys

from lemlabs.cli import main

sys.exit(main())
