"""``python -m edgeinspect_line_io``: the same as the ``edgeinspect-line-io`` console script."""

import sys

from edgeinspect_line_io.main import main

sys.exit(main())
