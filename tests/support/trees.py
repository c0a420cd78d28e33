"""Process trees of ``tests/scripts/task_tree.py``: the command that starts one, its
pids once it is up, and the check that every one of them is gone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil

from tests.support.runners import SCRIPTS
from tests.support.waiting import wait_for


def tree_command(pid_file: Path) -> str:
    return f"exec {sys.executable} {SCRIPTS / 'task_tree.py'} {pid_file}"


def wait_tree(pid_file: Path) -> dict[str, int]:
    """Wait until the task tree of ``task_tree.py`` is up; its pids by role."""
    wait_for(pid_file.exists, what="the task tree")
    pids: dict[str, int] = json.loads(pid_file.read_text())
    return pids


def assert_all_gone(pids: dict[str, int]) -> None:
    def gone() -> bool:
        for pid in pids.values():
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                continue
        return True

    wait_for(gone, 10, f"processes {pids} to die")
