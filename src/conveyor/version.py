"""The package's version, the one source of it (``pyproject.toml`` reads it from here).

A constant rather than ``importlib.metadata``, which imports the email parser, zipfile and
pathlib: about 3 MB in the worker process that prints the banner."""

VERSION = "0.1.0"
