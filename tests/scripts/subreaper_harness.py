"""Run one Supervisor inside a process that is a child subreaper, like `dp-runner run`.

The test process itself must never become a subreaper, so the tests start this
harness instead. It spawns tests/scripts/tree.py under a Supervisor, waits for the
tree to be up, terminates it with a short grace, and prints one JSON line:

    {"subreaper": bool, "pids": {...}, "orphan_parent": int, "outcome": {...},
     "terminate_s": float, "alive": [pids still present], "zombies": [our zombie pids],
     "groups_alive": [process groups os.killpg(pgid, 0) still finds]}

argv[1]: a scratch directory.  argv[2] (optional): "ignore-term" for the task itself.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import structlog

from runner import supervisor

SCRIPTS = Path(__file__).resolve().parent


def main() -> None:
    scratch = Path(sys.argv[1])
    extra = sys.argv[2:3]
    subreaper = supervisor.enable_subreaper()
    pid_file = scratch / "pids.json"
    pid_file.unlink(missing_ok=True)
    sup = supervisor.Supervisor.spawn(
        [sys.executable, str(SCRIPTS / "tree.py"), str(pid_file), *extra],
        cwd=scratch,
        env=supervisor.task_environment(os.environ, {}),
        stdout=scratch / "out",
        stderr=scratch / "err",
        marker=f"harness-{os.getpid()}",
        log=structlog.get_logger(),
    )
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    pids = json.loads(pid_file.read_text())
    orphan_parent = psutil.Process(pids["orphan"]).ppid()
    started = time.monotonic()
    outcome = sup.terminate(0.2)
    elapsed = time.monotonic() - started
    zombies = [
        p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE
    ]
    groups_alive = []
    for pgid in (pids["task"], pids["setsid"]):
        try:
            os.killpg(pgid, 0)
            groups_alive.append(pgid)
        except ProcessLookupError:
            pass
    report = {
        "groups_alive": groups_alive,
        "subreaper": subreaper,
        "harness_pid": os.getpid(),
        "pids": pids,
        "orphan_parent": orphan_parent,
        "outcome": {
            "returncode": outcome.returncode,
            "signal": outcome.signal,
            "killed": outcome.killed,
        },
        "terminate_s": elapsed,
        "alive": [pid for pid in pids.values() if psutil.pid_exists(pid)],
        "zombies": zombies,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
