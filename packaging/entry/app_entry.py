"""The frozen ``workbench`` executable: the same entry as the ``workbench`` GUI script."""

import sys

from ui.app import run

sys.exit(run())
