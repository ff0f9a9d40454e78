"""`python -m genstudio.cli`: the same as the `genstudio` command."""

import sys

from genstudio.cli import main

sys.exit(main())
