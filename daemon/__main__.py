"""`python -m daemon` is the same program as the `mdbackup` console script."""

import sys

from daemon.cli import main

sys.exit(main())
