"""``python -m workbench`` runs the ``nvwb`` CLI."""

from workbench.cli.main import run

run()
