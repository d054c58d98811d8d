"""The ``lapak`` command: one argparse front for every subcommand.

It lives outside ``lapak.console`` so a headless server (``lapak signal``) never imports
Textual; each subcommand imports what it runs only when it runs.
"""

from lapak.cli.main import main

__all__ = ["main"]
