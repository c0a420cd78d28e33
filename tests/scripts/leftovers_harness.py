"""``kill_leftovers`` inside a child subreaper, as ``dp-runner run`` uses it.

A subreaper lets the supervisor rule leftovers out without scanning the process
table; this harness checks that the shortcut never misses one. It runs, one after
the other:

    alone           the task exits 0 and leaves nothing; no other child exists

then, with a long-running task of another attempt alive throughout:

    clean           the task exits 0 and leaves nothing
    in-group        it leaves a double-forked helper in its process group
    setsid          it leaves a double-forked helper that called setsid

and prints one JSON line: {"subreaper": bool, "cases": {name: {"found": int,
"helper_alive": bool}}, "other_alive": bool, "zombies": [our zombie pids]}.

argv[1]: a scratch directory.
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
CASES = {"clean": "exit", "in-group": "leave-orphan", "setsid": "leave-setsid-orphan"}


def spawn(scratch: Path, name: str, *args: str) -> supervisor.Supervisor:
    folder = scratch / name
    folder.mkdir()
    return supervisor.Supervisor.spawn(
        [sys.executable, str(SCRIPTS / "child.py"), *args],
        cwd=folder,
        env=supervisor.task_environment(os.environ, {}),
        stdout=folder / "out",
        stderr=folder / "err",
        marker=f"harness-{os.getpid()}-{name}",
        log=structlog.get_logger(),
    )


def wait_file(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        threading.Event().wait(0.005)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_case(scratch: Path, name: str, mode: str) -> dict[str, object]:
    helper_file = scratch / f"{name}.pid"
    args = ["0"] if mode == "exit" else [str(helper_file)]
    sup = spawn(scratch, name, mode, *args)
    if sup.wait_exit(10) is None:
        raise SystemExit(f"case {name}: the task did not end")
    helper = int(helper_file.read_text()) if mode != "exit" else None
    found = sup.kill_leftovers(0.5)
    return {"found": found, "helper_alive": helper is not None and alive(helper)}


def main() -> None:
    scratch = Path(sys.argv[1])
    subreaper = supervisor.enable_subreaper()
    cases = {"alone": run_case(scratch, "alone", "exit")}
    ready = scratch / "other.ready"
    other = spawn(scratch, "other", "obey-term", str(ready))
    wait_file(ready)
    cases |= {name: run_case(scratch, name, mode) for name, mode in CASES.items()}
    other_alive = other.poll_nowait() is None
    other.terminate(1.0)
    zombies = [
        p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE
    ]
    report = {
        "subreaper": subreaper,
        "cases": cases,
        "other_alive": other_alive,
        "zombies": zombies,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
