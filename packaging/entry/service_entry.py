"""The frozen ``nvwb-service`` executable: what a frozen client spawns for ``python -m
nvwb.service`` (a frozen build has no ``-m``; see ``workbench.service.client``)."""

import sys

from nvwb.service import main

sys.exit(main())
