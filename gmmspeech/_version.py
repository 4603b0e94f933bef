"""The package version, in a module of its own so that writers of file headers and the CLI
can read it without importing the package's public namespace."""

__version__ = "0.1.0"
