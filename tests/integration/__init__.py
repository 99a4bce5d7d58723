"""Integration tests against real services: a Docker engine, an OpenSSH server, the OS keyring."""
