"""An attempt's own values: its folder (``AttemptPaths``, the Java runner's
layout) and how its supervised process ended (``ProcessExit``).

Pure values: no I/O, nothing imported from the runner, so the supervisor, the
activities and ``task/`` share them. Split from ``taskmodel.py`` by concept: that
module reads tasks and cuts statuses; this one describes one attempt on this host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AttemptPaths:
    """The per-attempt folder and the files in it (Java runner layout)."""

    root: Path

    @property
    def stdout(self) -> Path:
        return self.root / "StdOutput"

    @property
    def stderr(self) -> Path:
        return self.root / "StdError"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def staging(self) -> Path:
        """Where INPUTn/OUTPUTn staging folders go; removed after the attempt."""
        return self.root / "staging"


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """How a supervised process ended.

    ``returncode`` is the exit code, or ``None`` when a signal ended it; then
    ``signal`` names it. ``killed`` is true when we stopped the tree ourselves.
    """

    returncode: int | None
    signal: int | None
    duration_s: float
    killed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.killed
