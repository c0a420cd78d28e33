"""What one ``dp-runner healthcheck`` probe costs: wall time and peak RSS.

The probe runs every 10 to 30 s in the Kubernetes and ECS examples. It is started
here as the installed ``dp-runner`` script is, against a listener in this process
that answers ``/healthz`` with 200, with its address given once by flag and once
by a TOML file (``tomllib``). Each run is a fresh process; its peak RSS comes from
GNU ``time``. For comparison, the same is measured for the full command line
(``dp-runner --version``: click, the settings, pydantic).

Budget (issue 27): under 0.1 s and 20 MB a probe (the median).

Run: python bench/bench_healthcheck.py [--runs N] (a few seconds)
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

SCRIPT = Path(sys.executable).with_name("dp-runner")
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


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB, exit status of one run of ``argv``.

    The peak RSS comes from GNU time, which forks it: a child of this (larger)
    process would count this process's pages in its peak before its exec."""
    with tempfile.NamedTemporaryFile("r") as report:
        began = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", report.name, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        wall_s = time.perf_counter() - began
        peak_kb = int(report.read().split()[-1])
    return wall_s, peak_kb / 1024, done.returncode


def measure(
    name: str, argv: list[str], env: dict[str, str], runs: int
) -> tuple[float, float]:
    samples = [run_once(argv, env) for _ in range(runs)]
    assert all(code == 0 for _, _, code in samples), (name, samples)  # noqa: S101 - a bench's check
    wall = statistics.median(s for s, _, _ in samples)
    rss = statistics.median(m for _, m, _ in samples)
    print(f"{name:<34} median {wall * 1000:6.1f} ms   peak RSS {rss:5.1f} MB")
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    server = HTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DP_RUNNER_")}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'worker_groups = ["wg"]\nhttp_address = "{address}"\n')
        flag = [str(SCRIPT), "healthcheck", "--http-address", address]
        toml = [str(SCRIPT), "healthcheck", "--config", str(config)]
        results = [
            measure("healthcheck --http-address", flag, env, runs),
            measure("healthcheck --config (TOML)", toml, env, runs),
        ]
        python = sys.executable
        measure("python -c pass (the interpreter)", [python, "-c", "pass"], env, runs)
        measure("dp-runner --version (full CLI)", [str(SCRIPT), "--version"], env, 5)
    server.shutdown()
    worst_s = max(wall for wall, _ in results)
    worst_mb = max(rss for _, rss in results)
    verdict = "within" if worst_s < BUDGET_S and worst_mb < BUDGET_MB else "OVER"
    print(
        f"budget {BUDGET_S * 1000:.0f} ms and {BUDGET_MB:.0f} MB: {verdict} "
        f"({worst_s * 1000:.1f} ms, {worst_mb:.1f} MB)"
    )


if __name__ == "__main__":
    main()
