"""A task that builds a tree that is hard to kill, then waits to be killed.

argv[1]: a file to write the tree's pids to, as JSON, once every process is up.
argv[2] (optional): "ignore-term" to make this process ignore SIGTERM as well.

The tree, built with fork so it is up in milliseconds:
    this process ("task")
    ├── "ignorer": a child that ignores SIGTERM
    ├── "setsid": a child that called setsid, in a session of its own
    │   └── "setsid_child": its child, in that other session
    └── (a middle process that exits at once) -> "orphan": a double-forked orphan,
        re-parented to the nearest subreaper (or init); only the marker ties it to us
"""

import json
import os
import signal
import sys


def _wait_forever() -> None:
    while True:
        signal.pause()


def _fork(body) -> int:  # type: ignore[no-untyped-def]  # a test script
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    return pid


def _ignorer() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _wait_forever()


def main() -> None:
    pids = {"task": os.getpid()}
    # Ignore TERM before the fork, so the child is TERM-proof the moment it exists.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids["ignorer"] = _fork(_wait_forever)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    read_end, write_end = os.pipe()

    def setsid_leader() -> None:
        os.setsid()
        child = _fork(_wait_forever)
        os.write(write_end, f"{child}\n".encode())
        _wait_forever()

    def middle() -> None:
        orphan = _fork(_wait_forever)
        os.write(write_end, f"{orphan}\n".encode())

    pids["setsid"] = _fork(setsid_leader)
    middle_pid = _fork(middle)
    os.waitpid(middle_pid, 0)
    lines = b""
    while lines.count(b"\n") < 2:
        lines += os.read(read_end, 64)
    first, second = (int(x) for x in lines.split())
    # Which line came first is a race; the orphan's parent is no longer its forker.
    pids["setsid_child"], pids["orphan"] = first, second
    for pid in (first, second):
        with open(f"/proc/{pid}/stat") as handle:
            sid = int(handle.read().rsplit(")", 1)[1].split()[3])
        if sid != pids["setsid"]:
            pids["orphan"] = pid
        else:
            pids["setsid_child"] = pid
    if len(sys.argv) > 2 and sys.argv[2] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(sys.argv[1] + ".tmp", "w") as handle:
        json.dump(pids, handle)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    _wait_forever()


if __name__ == "__main__":
    main()
