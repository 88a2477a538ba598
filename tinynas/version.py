"""The package version, in a module of its own so that any layer can name it (tinynas/__init__ re-exports it)."""

__version__ = "0.1.0"
