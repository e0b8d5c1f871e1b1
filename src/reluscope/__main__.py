"""``python -m reluscope``: the same command line as ``reluscope``."""

import sys

from reluscope.cli import main

sys.exit(main())
