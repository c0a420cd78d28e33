"""A child program for the supervisor tests: one behaviour per first argument.

exit N            print a line to stdout and one to stderr, exit with N
signal NAME       kill itself with the signal NAME (for example TERM)
env               print the environment as JSON on stdout
touch PATH        create PATH (its mode shows the umask), then exit 0
ignore-term PATH  ignore SIGTERM, write PATH once that holds, wait to be killed
obey-term PATH    keep the default SIGTERM, write PATH, wait to be killed
leave-orphan PATH        double-fork a helper that writes its pid to PATH and
                         waits; exit 0 once PATH exists
leave-setsid-orphan PATH the same, but the helper calls setsid first (it leaves
                         the task's process group and session)
"""

import json
import os
import signal
import sys
import time


def _ready(path: str) -> None:
    with open(path + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(path + ".tmp", path)


def _wait_forever() -> None:
    while True:
        signal.pause()


def _leave_orphan(path: str, *, setsid: bool) -> None:
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            if setsid:
                os.setsid()
            _ready(path)
            _wait_forever()
        os._exit(0)
    os.waitpid(middle, 0)
    while not os.path.exists(path):
        time.sleep(0.005)


def main() -> int:
    mode, *args = sys.argv[1:]
    if mode == "exit":
        sys.stdout.write("to stdout\n")
        sys.stderr.write("to stderr\n")
        return int(args[0])
    if mode == "signal":
        os.kill(os.getpid(), signal.Signals["SIG" + args[0]])
        _wait_forever()
    if mode == "env":
        sys.stdout.write(json.dumps(dict(os.environ)) + "\n")
        return 0
    if mode == "touch":
        with open(args[0], "w") as handle:
            handle.write("x")
        return 0
    if mode in ("ignore-term", "obey-term"):
        if mode == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _ready(args[0])
        _wait_forever()
    if mode in ("leave-orphan", "leave-setsid-orphan"):
        _leave_orphan(args[0], setsid=mode == "leave-setsid-orphan")
        return 0
    sys.stderr.write(f"unknown mode {mode!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
