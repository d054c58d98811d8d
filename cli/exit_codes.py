"""The exit codes of every `lapak` command (README, "Exit codes"): one table, so that a script
can tell an operator's mistake from an unreachable server or a refused token."""

EXIT_OK = 0
EXIT_FAILED = 1
"""The work failed: ``audit verify`` found problems, the server stopped on an error."""
EXIT_USAGE = 2
"""Bad arguments or settings (also argparse's own code)."""
EXIT_NO_FILE = 3
"""A file named on the command line is missing or unreadable."""
EXIT_UNREACHABLE = 4
"""The server cannot be reached."""
EXIT_TOKEN = 5
"""The token is malformed, refused, expired, or for another role or command."""
EXIT_TLS = 6
"""The server's certificate is not trusted (see ``--ca-file``)."""
EXIT_REPLACED = 7
"""Another console took this desk over (close code 4002): not restarted on its own."""
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141
"""The reader of our output went away (``lapak audit export | head``): no message."""
