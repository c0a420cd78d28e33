"""Run a command below a child subreaper, and ``kill -9`` it and start it again on
demand: a runner killed mid-task and restarted on the same work dir, with what it
left still below the harness, where a test can find it and nothing stays a zombie.

    kill9_harness.py [--log FILE] -- COMMAND [ARG...]

- It makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), as
  ``dp-runner run`` does, so what the command leaves re-parents here and not to
  PID 1 (which does not reap on these machines). It reaps every adopted child
  that ends, by pid; the command itself is reaped by its ``Popen``.
- SIGUSR1: SIGKILL the command, reap it, and start the same command again.
- SIGTERM: forward it to the command; once the command has exited, exit with its
  exit code (128 + n for signal n). The command exiting by itself ends the harness
  the same way.
- The command's stdout and stderr are appended to ``--log`` (default: the
  harness's stderr), so that stdout carries only the harness's JSON lines:

    {"started": pid}                        each start of the command
    {"killed": pid}                         after SIGUSR1, once it is reaped
    {"reaped": pid}                         an adopted orphan ended and was reaped
    {"exited": pid, "returncode": n, "adopted_alive": [pids]}   the last line

Signal handlers only queue the signal number; the main loop acts on it.
"""

import argparse
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
from typing import IO, Any

import psutil

PR_SET_CHILD_SUBREAPER = 36
TICK_S = 0.02


def say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def make_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")


def reap_adopted(command_pid: int) -> None:
    """Reap every ended child but the command, by pid (never ``waitpid(-1)``,
    which could take the command's status from its ``Popen``)."""
    for child in psutil.Process().children():
        if child.pid == command_pid:
            continue
        try:
            done, _ = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done == child.pid:
            say(reaped=child.pid)


def start(argv: list[str], output: IO[bytes] | None) -> subprocess.Popen[bytes]:
    command = subprocess.Popen(argv, stdout=output, stderr=output)
    say(started=command.pid)
    return command


def exit_code(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", help="append the command's output to this file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        parser.error("no command given")
    make_subreaper()
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, lambda n, _frame: signals.put(n))
    output = open(args.log, "ab") if args.log else sys.stderr.buffer  # noqa: SIM115
    command = start(argv, output)
    while command.poll() is None:
        try:
            signum = signals.get(timeout=TICK_S)
        except queue.Empty:
            signum = None
        if signum == signal.SIGUSR1:
            command.kill()
            command.wait()
            say(killed=command.pid)
            command = start(argv, output)
        elif signum == signal.SIGTERM:
            command.send_signal(signal.SIGTERM)
        reap_adopted(command.pid)
    reap_adopted(command.pid)
    alive = [child.pid for child in psutil.Process().children()]
    say(exited=command.pid, returncode=command.returncode, adopted_alive=alive)
    sys.exit(exit_code(command.returncode))


if __name__ == "__main__":
    main()
