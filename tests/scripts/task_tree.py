"""A task that builds a hard-to-kill tree, then waits to be killed.

argv[1]: a file to write the tree's pids to, as JSON, once every process is up.
The tree: this process; a child that ignores SIGTERM; a grandchild (under that child)
that called setsid and so sits in a session of its own.
"""

import json
import signal
import subprocess
import sys
import time

IGNORE_TERM = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
    " start_new_session=True)\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(600)\n"
)

child = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE)
grandchild = int(child.stdout.readline())
pids = {"task": __import__("os").getpid(), "child": child.pid, "grandchild": grandchild}
with open(sys.argv[1] + ".tmp", "w") as handle:
    json.dump(pids, handle)
__import__("os").replace(sys.argv[1] + ".tmp", sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(600)
