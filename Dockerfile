# syntax=docker/dockerfile:1
# dp-runner as a container: the runner is PID 1 (exec-form ENTRYPOINT, no shell and
# no init in between), runs as a non-root user, and keeps its state in a volume, so
# the root file system can be read-only. docs/containers.md shows it under Docker,
# ECS and Kubernetes.
#
#   docker build -t dp-runner .
#
# No Docker engine runs on the machines that test this repository, so this image is
# not built by the test suite. What a container changes is tested without one:
# tests/test_container.py reads this file (a numeric non-root USER, an exec-form
# ENTRYPOINT, the ENV, VOLUME and HEALTHCHECK below), and runs the runner as PID 1 of
# a new PID namespace (unshare) with a read-only / and a tmpfs work dir.

# Build the wheel from the project's own files (.dockerignore lets in only those).
# Python 3.11: the version CI runs (.ci/run), with the locked dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY runner ./runner
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && cp constraints.txt /wheels/

FROM python:3.11-slim
# JSON log lines reach `docker logs` as they are written. Bytecode is compiled at
# install time; a read-only root could not take it later.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheel comes in through a bind mount of the build stage: no layer keeps it.
# Its dependencies at the versions of constraints.txt, the ones CI tested.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --compile -c /wheels/constraints.txt /wheels/*.whl

# A numeric uid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 dp-runner \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin dp-runner \
    && install -d -m 0700 -o 10001 -g 10001 /var/lib/dp-runner

# /healthz, /readyz and /metrics on loopback: `dp-runner healthcheck` (below) runs
# inside the container and reads the same variable. Set 0.0.0.0:9102 for a scraper
# or an httpGet probe from outside (the listener has no authentication).
ENV DP_RUNNER_HTTP_ADDRESS=127.0.0.1:9102 \
    DP_RUNNER_WORK_DIR=/var/lib/dp-runner
# Attempt folders, logs and the journal (statuses a stop left unsent). Docker and
# ECS copy this folder, and its owner, into a fresh volume mounted here.
VOLUME ["/var/lib/dp-runner"]
WORKDIR /var/lib/dp-runner
USER 10001:10001

# SIGTERM drains: running tasks get drain_timeout (60 s), then kill_grace (10 s),
# then the final statuses get up to 30 s. Give `docker stop` (ECS stopTimeout,
# Kubernetes terminationGracePeriodSeconds) 110 s.
STOPSIGNAL SIGTERM
# /healthz answers once the runner has started: its first runner heartbeat and the
# journal's recovery may take up to 180 s (the systemd unit's TimeoutStartSec).
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["dp-runner", "healthcheck"]
# Exec form: dp-runner is PID 1 and gets the signal itself. It handles SIGTERM,
# SIGINT and SIGHUP (held from its first line, so a stop during start-up is not
# lost) and reaps the orphans of its tasks. Worker groups come from
# DP_RUNNER_WORKER_GROUPS (or `docker run IMAGE run --worker-group NAME`).
ENTRYPOINT ["dp-runner"]
CMD ["run"]
