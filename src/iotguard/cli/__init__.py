"""The ``iotguard`` command line: one module per command group, wired together in :mod:`iotguard.cli.main`."""
