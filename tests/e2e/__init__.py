"""End-to-end tests: the CLI and the service driving real contexts from start to stop."""
