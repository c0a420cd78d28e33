"""The local AWS Data Pipeline service (`dp-runner local`), an island in `runner`.

It speaks the real AWS JSON 1.1 wire protocol on loopback, keeps its state in
SQLite and imports nothing from the rest of `runner` (import-linter holds this).
The public surface is `LocalService`, `RecordedCall` and `StartupError` (why a
service could not start); everything else is internal to this package.
"""

from __future__ import annotations

from runner.localservice.faults import RecordedCall
from runner.localservice.server import LocalService
from runner.localservice.startup import StartupError

__all__ = ["LocalService", "RecordedCall", "StartupError"]
