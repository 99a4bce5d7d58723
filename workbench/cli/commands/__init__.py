"""One module per group of ``nvwb`` commands; each handler takes an ``Invocation``."""
