"""``python -m edgeinspect_inference.agent``: the same as the ``edgeinspect-agent`` console script."""

import sys

from edgeinspect_inference.agent.main import main

sys.exit(main())
