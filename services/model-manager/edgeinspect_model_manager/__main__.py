"""``python -m edgeinspect_model_manager`` runs the service (same as ``edgeinspect-model-manager``)."""

import sys

from edgeinspect_model_manager.main import main

sys.exit(main())
