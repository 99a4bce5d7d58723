"""``python -m nvwb ...``: the ``nvwb`` command."""

from __future__ import annotations

from nvwb.cli import run

if __name__ == "__main__":
    run()
