"""The ``lifelong`` command: ``train``, ``resume``, ``eval``, ``pbt``, ``report``; its run
directories and its configuration files. The library never imports this package."""
from lifelong.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
