"""``python -m oxzarr``: the ``oxzarr`` command."""

import sys

from oxzarr.cli import main

sys.exit(main())
