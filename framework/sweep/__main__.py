"""`python -m framework.sweep`: see framework/sweep/cli.py."""

import sys

from framework.sweep.cli import main

sys.exit(main())
