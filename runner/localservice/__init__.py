"""The local AWS Data Pipeline service (`dp-runner local`), an island in `runner`.

It speaks the real AWS JSON 1.1 wire protocol on loopback, keeps its state in
SQLite and imports nothing from the rest of `runner` (import-linter holds this).
The public surface is `LocalService` and `RecordedCall`; everything else is
internal to this package.
"""

from __future__ import annotations

from runner.localservice.faults import RecordedCall
from runner.localservice.server import LocalService

__all__ = ["LocalService", "RecordedCall"]
