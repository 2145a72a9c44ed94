"""``python -m npconv``: the same as the ``npconv`` command."""

import sys

from npconv.cli import main

sys.exit(main())
