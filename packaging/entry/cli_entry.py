"""The frozen ``nvwb`` executable: the same entry as the ``nvwb`` console script."""

from nvwb.cli import run

run()
