"""The executables' composition root: the one place that puts the core and the kinds together.

``workbench`` (the core) never imports ``contexts`` (the kinds); ``nvwb.cli`` and
``nvwb.service`` register the built-in kinds, then run the core's CLI or service. ``ui/app.py``
does the same for the app.
"""
