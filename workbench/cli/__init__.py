"""The ``nvwb`` command line: AI Workbench's command names over the Workbench core."""
