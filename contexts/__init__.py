"""Execution-context backends (providers), one module per kind: local, ssh, brev, command."""
