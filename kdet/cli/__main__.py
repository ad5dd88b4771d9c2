"""`python -m kdet.cli …` runs the `kdet` command line."""

import sys

from kdet.cli import main

sys.exit(main())
