"""`python -m mdbackup` is the same program as the `mdbackup` console script."""

import sys

from mdbackup.cli import main

sys.exit(main())
