"""Unit tests: the core without services (no Docker, SSH or keyring)."""
