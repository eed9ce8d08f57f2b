"""``python -m edgeinspect_inference.worker``: the same as the ``edgeinspect-inference`` console script."""

import sys

from edgeinspect_inference.worker.main import main

sys.exit(main())
