"""``python -m torchrl_mst`` runs the ``torchrl-mst`` command line."""

import sys

from torchrl_mst.cli import main

sys.exit(main())
