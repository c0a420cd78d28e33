"""A task that must never run beside another run of itself.

    flock_task.py LOCK CLASHES SECONDS

It takes an exclusive flock on LOCK for as long as it runs. If the lock is already
held, another run is alive: it appends its pid and marker to CLASHES, then waits
for the lock. Then it holds it for SECONDS.
"""

import fcntl
import os
import sys
import time

lock_path, clash_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    with open(clash_path, "a", encoding="utf-8") as clashes:
        clashes.write(f"{os.getpid()} {os.environ.get('DP_RUNNER_ATTEMPT')}\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
sys.stdout.write("holding\n")
sys.stdout.flush()
time.sleep(seconds)
