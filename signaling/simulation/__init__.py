"""``lapak simulate``: a branch's day before it happens, on the real domain core.

Modules, one job each: ``params`` (the TOML parameters and their distributions), ``arrivals``
(who comes when, with what), ``engine`` (the discrete-event loop that drives
``signaling.domain.Domain`` with simulated time), ``metrics`` (numbers and the report),
``sweep`` (a grid of runs and its plot), ``logdir`` (the simulated day's event log through the
real ``EventLog``) and ``cli`` (the thin command-line shell). Nothing here is imported by the
server; importing this package loads nothing heavy.
"""
