"""`StartupError`: why a local service could not start, in one line.

Owns: the one exception `LocalService` raises when it cannot start: the address
cannot be bound (a port in use, an address not on this host), or the state file
cannot be used (a path that cannot be opened or written, a file that is not
SQLite, or SQLite of another program or of a schema version this one does not
know).

Must not: carry a traceback's worth of detail; the message is what a person reads.

Why: these are configuration errors, not crashes: `dp-runner local` prints the
message on one line and exits 78 (EX_CONFIG), as the runner does for its own
configuration. The package is an island, so the CLI maps this class itself.
"""

from __future__ import annotations


class StartupError(Exception):
    """The service cannot start; `str()` says why, naming the path or address."""
