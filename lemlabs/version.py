"""The package version (read by the build, shown in ``rules_version`` and ``--version``)."""

__version__ = "0.1.0"
