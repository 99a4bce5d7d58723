"""Containers: turning a project's build inputs into an image and running it on a context.

``build_context`` is pure (recipe in, Dockerfile and tar out) so it can be tested without Docker;
the modules that talk to a Docker engine sit beside it and import it, never the other way round.
"""

from __future__ import annotations
