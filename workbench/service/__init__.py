"""The Workbench service: one process per user that owns every context's state and leases.

Windows and CLI calls come and go; the decision to start a paid machine, and the timer that
stops it after the last window closes, must outlive all of them. ``client`` is how the CLI and
the app reach the service; ``manager`` and ``machine`` are what it does; ``server`` and
``protocol`` are how it listens; ``methods`` and ``messages`` are the contract between them,
declared once.
"""
