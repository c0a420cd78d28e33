"""What one ``dp-runner healthcheck`` probe costs: wall time and peak RSS.

The probe runs every 10 to 30 s in the Kubernetes and ECS examples. It is started
here as the installed ``dp-runner`` script is, against a listener in this process
that answers ``/healthz`` with 200, with its address given once by flag and once
by a TOML file (``tomllib``). Each run is a fresh process; its peak RSS comes from
GNU ``time``. For comparison, the same is measured for the full command line
(``dp-runner --version``: click, the settings, pydantic).

Budget (issue 27): under 0.1 s and 20 MB a probe: the median CPU time (user and
system) and peak RSS. The wall time is printed too (best and median): on an idle
host it is the CPU time plus a few milliseconds; on a loaded one it is mostly
waiting for a core, as the bare interpreter's figures beside it show.

Run: python bench/bench_healthcheck.py [--runs N] [--python PYTHON] (a few
seconds). An editable install (the dev venv) adds its import hook to every start;
``make bench`` measures the runtime-only install (``--python``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

#: GNU time (Debian: apt-get install time).
TIME = "/usr/bin/time"
BUDGET_S = 0.1
BUDGET_MB = 20.0


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds (user and system), peak RSS in MB, and the exit
    status of one run of ``argv``.

    The peak RSS comes from GNU time, which forks it: a child of this (larger)
    process would count this process's pages in its peak before its exec."""
    with tempfile.NamedTemporaryFile("r") as report:
        began = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%U %S %M", "-o", report.name, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        wall_s = time.perf_counter() - began
        user_s, system_s, peak_kb = report.read().split()[-3:]
    cpu_s = float(user_s) + float(system_s)
    return wall_s, cpu_s, int(peak_kb) / 1024, done.returncode


def measure(
    name: str, argv: list[str], env: dict[str, str], runs: int
) -> tuple[float, float]:
    """Print the figures of ``runs`` runs; the median CPU time and peak RSS. The
    CPU time (user and system, 10 ms resolution) is what the probe spends, not
    moved by other load on the host as the wall time is; the best wall time is
    the wall figure that load moves least."""
    samples = [run_once(argv, env) for _ in range(runs)]
    assert all(s[3] == 0 for s in samples), (name, samples)  # noqa: S101 - a bench's check
    walls = [s[0] for s in samples]
    cpu = statistics.median(s[1] for s in samples)
    rss = statistics.median(s[2] for s in samples)
    print(
        f"{name:<34} wall best {min(walls) * 1000:5.0f} ms, "
        f"median {statistics.median(walls) * 1000:5.0f} ms; "
        f"CPU {cpu * 1000:4.0f} ms; peak RSS {rss:5.1f} MB"
    )
    return cpu, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the install to measure (its dp-runner script "
        "beside it); make bench passes the runtime-only install's",
    )
    args = parser.parse_args()
    runs, python = args.runs, args.python
    script = Path(python).with_name("dp-runner")
    server = HTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DP_RUNNER_")}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'worker_groups = ["wg"]\nhttp_address = "{address}"\n')
        flag = [str(script), "healthcheck", "--http-address", address]
        toml = [str(script), "healthcheck", "--config", str(config)]
        results = [
            measure("healthcheck --http-address", flag, env, runs),
            measure("healthcheck --config (TOML)", toml, env, runs),
        ]
        measure("python -c pass (the interpreter)", [python, "-c", "pass"], env, runs)
        measure("dp-runner --version (full CLI)", [str(script), "--version"], env, 5)
    server.shutdown()
    worst_s = max(cpu for cpu, _ in results)
    worst_mb = max(rss for _, rss in results)
    verdict = "within" if worst_s < BUDGET_S and worst_mb < BUDGET_MB else "OVER"
    print(
        f"budget {BUDGET_S * 1000:.0f} ms and {BUDGET_MB:.0f} MB: {verdict} "
        f"({worst_s * 1000:.0f} ms CPU, {worst_mb:.1f} MB)"
    )
    sys.exit(0 if verdict == "within" else 1)


if __name__ == "__main__":
    main()
