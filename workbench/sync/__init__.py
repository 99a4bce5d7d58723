"""Two-way file sync between a project folder on the laptop and its copy on a remote context.

Modules: ``ignore`` (which paths are left alone), ``manifest`` (what a side holds), ``state``
(the last agreed state), ``reconcile`` (the three-way plan), ``local`` and ``remote`` (the two
sides), ``transport`` (how bytes reach the remote), ``apply`` (running a plan), ``watch``
(change feeds) and ``session`` (all of it, live). See ``docs/sync.md``.
"""

from __future__ import annotations
