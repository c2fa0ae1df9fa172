"""`python -m fleetsense.load provision|run`: see fleetsense/load/cli.py."""

import sys

from fleetsense.load.cli import main

sys.exit(main())
