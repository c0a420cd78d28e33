"""The container: the Dockerfile, the ECS and Kubernetes snippets of
docs/containers.md, and the runner as PID 1 of its own namespaces with a read-only
root.

No Docker engine runs where these tests run, so the image is never built here.
What the image changes for the runner is reproduced with ``unshare --mount --pid
--fork --mount-proc``: a wrapper makes the mounts private, puts a tmpfs on the work
dir and on ``TMPDIR``, remounts ``/`` read-only and ``exec``s the runner, so the
runner is PID 1 as under an exec-form ``ENTRYPOINT``. The network namespace is
shared: the runner reaches the local service of the test process on loopback. From
outside, the runner is the one child of ``unshare``; its tmpfs is read through
``/proc/<pid>/root``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml  # PyYAML comes with awscli, a dev extra

from runner.cli import main as cli
from runner.config import load_settings
from runner.dispatcher import MAIN_LOOP_S
from runner.housekeeping import REAP_EVERY_S
from runner.localservice import LocalService
from runner.shutdown import STATUS_BUDGET_S
from runner.signals import STOP_SIGNALS
from tests.support.pipelines import default_object, shell, submit, wait_instances
from tests.support.runners import REPO, RunnerProcess, runner_command
from tests.support.waiting import wait_for

DOCKERFILE = REPO / "Dockerfile"

# --- the Dockerfile ---------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, as Docker reads them: comment
    lines dropped (also inside a continuation), ``\\`` at the end of a line joins
    the next one."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return found


def final_stage(text: str) -> list[tuple[str, str]]:
    """The instructions from the last FROM on: the image that is shipped."""
    parsed = instructions(text)
    last = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[last:]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on the shell form."""
    value = json.loads(arguments)
    assert isinstance(value, list), arguments
    assert all(isinstance(part, str) for part in value), arguments
    return value


def env_values(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            pairs = shlex.split(arguments)
            assert all("=" in pair for pair in pairs), f"ENV {arguments}: use KEY=VALUE"
            env.update(pair.partition("=")[::2] for pair in pairs)
    return env


def test_the_image_runs_the_runner_as_pid_1_and_non_root() -> None:
    """A numeric non-root USER (runAsNonRoot can verify only a number), dp-runner
    itself as the exec-form ENTRYPOINT (a shell in between would be PID 1 and
    swallow SIGTERM), and a stop signal the runner drains on."""
    stage = final_stage(DOCKERFILE.read_text())
    single = {
        k: a for k, a in stage if k in {"USER", "ENTRYPOINT", "CMD", "STOPSIGNAL"}
    }
    user, _, group = single["USER"].partition(":")
    assert user.isdigit(), f"USER {single['USER']}: a numeric uid"
    assert int(user) != 0
    assert not group or int(group) != 0
    entrypoint, command = exec_form(single["ENTRYPOINT"]), exec_form(single["CMD"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert entrypoint == ["dp-runner"]
    assert entrypoint[0] in scripts["scripts"]
    assert command == ["run"]
    assert command[0] in cli.commands
    assert signal.Signals[single["STOPSIGNAL"]] in STOP_SIGNALS


def test_the_image_keeps_its_state_in_a_volume_and_checks_its_health() -> None:
    """The ENV names are settings (config.py reads them), the work dir is the
    VOLUME, and HEALTHCHECK asks ``dp-runner healthcheck``, which reads
    DP_RUNNER_HTTP_ADDRESS from the same ENV."""
    stage = final_stage(DOCKERFILE.read_text())
    env = env_values(stage)
    assert env["DP_RUNNER_HTTP_ADDRESS"] == "127.0.0.1:9102"
    assert env["DP_RUNNER_WORK_DIR"] == "/var/lib/dp-runner"
    settings = load_settings(config_file=None, overrides={}, env=env)
    assert settings.http_address == "127.0.0.1:9102"
    assert settings.work_dir == Path("/var/lib/dp-runner")
    (volume,) = [exec_form(a) for k, a in stage if k == "VOLUME"]
    assert volume == [env["DP_RUNNER_WORK_DIR"]]
    (check,) = [a for k, a in stage if k == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert exec_form(command) == ["dp-runner", "healthcheck"]
    assert "healthcheck" in cli.commands
    assert "--timeout=" in options


# --- the docs' snippets --------------------------------------------------------------


def containers_page() -> str:
    return (REPO / "docs" / "containers.md").read_text()


def snippets(language: str) -> list[str]:
    """The ```language blocks of the Containers page of the docs."""
    pattern = rf"^```{language}\n(.*?)^```"
    return re.findall(pattern, containers_page(), re.MULTILINE | re.DOTALL)


def stop_bound_s(env: dict[str, str]) -> float:
    """The runner's own bound on its exit after SIGTERM (shutdown.py), with the
    settings that ``env`` gives and the defaults of config.py for the rest."""
    settings = load_settings(config_file=None, overrides={}, env=env)
    return settings.drain_timeout + settings.kill_grace + STATUS_BUDGET_S


def image_uid() -> int:
    (user,) = [a for k, a in final_stage(DOCKERFILE.read_text()) if k == "USER"]
    return int(user.partition(":")[0])


def test_the_ecs_task_waits_longer_than_the_runner_bounds_its_exit() -> None:
    (task,) = [json.loads(text) for text in snippets("json")]
    (container,) = task["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert stop_bound_s(env) < container["stopTimeout"] <= 120  # ECS's maximum
    assert container["user"] == str(image_uid())
    assert container["readonlyRootFilesystem"] is True
    mounts = {m["containerPath"]: m["sourceVolume"] for m in container["mountPoints"]}
    assert mounts["/var/lib/dp-runner"] in {v["name"] for v in task["volumes"]}
    check = container["healthCheck"]
    assert check["command"] == ["CMD", "dp-runner", "healthcheck"]
    assert check["startPeriod"] <= 300  # ECS's maximum


def test_the_kubernetes_pod_waits_longer_than_the_runner_bounds_its_exit() -> None:
    (deployment,) = [yaml.safe_load(text) for text in snippets("yaml")]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "dp-runner"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert stop_bound_s(env) < spec["terminationGracePeriodSeconds"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == image_uid()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    probes = {
        "startupProbe": ["dp-runner", "healthcheck"],
        "livenessProbe": ["dp-runner", "healthcheck"],
        "readinessProbe": ["dp-runner", "healthcheck", "--ready"],
    }
    for probe, command in probes.items():
        assert container[probe]["exec"]["command"] == command  # 127.0.0.1: exec
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert mounts["/var/lib/dp-runner"] in empty_dirs


# --- the runner as PID 1 with a read-only root --------------------------------------

#: Run in the new namespaces, as PID 1 until it execs the runner: $1 the work dir,
#: $2 TMPDIR (each a tmpfs), then the runner's argv. Private mounts first, so that
#: nothing is propagated to the host's mount namespace.
WRAPPER = """\
set -eu
mount --make-rprivate /
mount -t tmpfs -o mode=0700 dp-runner-work "$1"
mount -t tmpfs -o mode=1777 dp-runner-tmp "$2"
mount -o remount,bind,ro /
shift 2
exec "$@"
"""
#: An adopted zombie is reaped by the dispatcher (daemon.py).
REAP_DEADLINE_S = REAP_EVERY_S + MAIN_LOOP_S + 3


class Contained(RunnerProcess):
    """``unshare`` and, as its one child, the runner: PID 1 inside."""

    @property
    def pid(self) -> int:
        """The runner's pid outside its namespace."""
        children = wait_for(
            lambda: psutil.Process(self.process.pid).children(), 10, "the runner"
        )
        return int(children[0].pid)

    def root(self, path: Path) -> Path:
        """``path`` as the runner sees it (its tmpfs mounts are only there)."""
        return Path(f"/proc/{self.pid}/root") / path.relative_to("/")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.pid, signum)


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status``: ``NSpid`` is its pid in each PID namespace, outermost
    first; ``SigBlk`` and ``SigCgt`` are the signals it blocks and catches (hex)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value for key, _, value in (x.partition(":\t") for x in lines)}


def inner_pid(pid: int) -> int:
    return int(proc_status(pid)["NSpid"].split()[-1])


def is_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def contain(
    service: LocalService, tmp_path: Path
) -> Iterator[Callable[..., Contained]]:
    if os.geteuid() != 0:
        pytest.skip("unshare --mount needs root (CI runs the tests as root)")
    started: list[Contained] = []

    def spawn(*args: str) -> Contained:
        work_dir, tmp_dir = tmp_path / "work", tmp_path / "tmp"
        work_dir.mkdir()
        tmp_dir.mkdir()
        log_path = tmp_path / "runner.log"
        argv = runner_command(
            service.endpoint_url, work_dir, "--worker-group", "wg", *args
        )
        env = dict(os.environ, TMPDIR=str(tmp_dir), AWS_EC2_METADATA_DISABLED="true")
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                 "--kill-child", "sh", "-c", WRAPPER, "sh",
                 str(work_dir), str(tmp_dir), *argv],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO, env=env,
            )  # fmt: skip
        runner = Contained(process, log_path, work_dir)
        started.append(runner)
        return runner

    yield spawn
    for runner in started:
        if runner.process.poll() is None:
            for child in psutil.Process(runner.process.pid).children():
                child.kill()  # PID 1 gone: the kernel kills its whole namespace
        runner.process.wait(10)


def test_as_pid_1_under_a_read_only_root_a_task_finishes(
    service: LocalService, dp: Any, contain: Callable[..., Contained]
) -> None:
    """The task may write only its attempt folder and TMPDIR; ``/`` refuses it."""
    command = (
        "if touch /probe 2>/dev/null; then echo '/ is writable' >&2; exit 3; fi\n"
        'echo "parent $PPID" > written-here && echo scratch > "$TMPDIR/scratch"\n'
        "cat written-here"
    )
    pipeline_id = submit(
        dp, [default_object(), shell("ReadOnly", command, maximumRetries="0")]
    )
    runner = contain("--http-address", "127.0.0.1:0")
    started = runner.wait_event("worker_started")
    assert inner_pid(runner.pid) == 1
    writable = started["writable_paths"]
    assert writable is not None, "the runner found / writable"
    assert runner.work_dir.as_posix() in writable
    done = wait_instances(dp, pipeline_id, {"FINISHED", "FAILED"})
    assert {f["@status"] for f in done.values()} == {"FINISHED"}, done
    outputs = list(runner.root(runner.work_dir).glob("attempts/*/*/*/*/StdOutput"))
    assert [p.read_text() for p in outputs] == ["parent 1\n"]
    # the image's HEALTHCHECK, as Docker runs it: in the container's namespaces
    healthcheck = subprocess.run(
        ["nsenter", f"--target={runner.pid}", "--mount", "--pid", f"--wd={REPO}",
         sys.executable, "-m", "runner", "healthcheck"],
        env=dict(os.environ, DP_RUNNER_HTTP_ADDRESS=started["http_address"]),
        capture_output=True, text=True, timeout=30, check=False, cwd=REPO,
    )  # fmt: skip
    assert healthcheck.returncode == 0, healthcheck.stderr
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0


def test_as_pid_1_the_runner_reaps_the_orphans_it_adopts(
    service: LocalService, dp: Any, contain: Callable[..., Contained]
) -> None:
    """Orphans re-parent to PID 1: one that exits by itself while the task runs
    (``sleep 0.2``), and one in a session of its own, without the task's marker,
    that the stop at the task's end kills (its attempt's cgroup, or as the only
    attempt's adopted child). Only PID 1 can reap them; a runner that does not
    leaves zombies for the life of the container."""
    command = "(setsid env -i sleep 2 &)\n(sleep 0.2 &)\nsleep 0.5"
    pipeline_id = submit(
        dp, [default_object(), shell("Orphans", command, maximumRetries="0")]
    )
    runner = contain()

    def adopted() -> psutil.Process | None:
        for child in psutil.Process(runner.pid).children():
            with contextlib.suppress(psutil.Error):  # (sleep 0.2 &) comes and goes
                if child.cmdline() == ["sleep", "2"]:
                    return child
        return None

    orphan = wait_for(adopted, 15, "the orphan, adopted by the runner")
    wait_instances(dp, pipeline_id, {"FINISHED"})
    wait_for(lambda: is_zombie(orphan) or not orphan.is_running(), 10, "its exit")
    wait_for(lambda: not psutil.pid_exists(orphan.pid), REAP_DEADLINE_S, "a reap")
    assert runner.process.poll() is None  # reaped by the runner, not at its exit

    def zombies() -> list[psutil.Process]:
        return [c for c in psutil.Process(runner.pid).children() if is_zombie(c)]

    wait_for(lambda: not zombies(), REAP_DEADLINE_S, "no zombie left")
    runner.wait_event("orphan_reaped")  # the sleep 0.2 at least, by housekeeping
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0


def test_as_pid_1_sigterm_drains_the_running_task_and_exits_zero(
    service: LocalService, dp: Any, contain: Callable[..., Contained]
) -> None:
    """PID 1 gets no signal it has no handler for: SIGTERM from outside the
    namespace (``docker stop``) reaches the runner only because it handles it."""
    pipeline_id = submit(dp, [default_object(), shell("Nap", "sleep 1.5; echo done")])
    runner = contain("--drain-timeout", "10")
    runner.wait_event("task_started")
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit(timeout=10) == 0  # unshare's status is the runner's
    wait_instances(dp, pipeline_id, {"FINISHED"})
    sent = [c.request for c in service.calls("SetTaskStatus") if c.error is None]
    assert [s["taskStatus"] for s in sent] == ["FINISHED"]
    assert runner.events("worker_draining")[0]["running"] == 1
    assert runner.events("runner_stopped")


def test_as_pid_1_a_stop_during_start_up_is_kept_not_lost(
    contain: Callable[..., Contained],
) -> None:
    """The kernel drops a signal sent to PID 1 while it has no handler for it. The
    runner holds the stop signals from its first line until its handlers are in,
    so a SIGTERM during its imports drains it at once instead of being lost. Once
    the handlers are in, the held SIGTERM lands in the start-up recovery or in the
    worker's drain, whichever the machine's speed puts it in: either says so."""
    runner = contain()
    sigterm = 1 << (signal.SIGTERM - 1)

    def starting() -> bool:
        if psutil.Process(runner.pid).cmdline()[1:3] != ["-m", "runner"]:
            return False  # still the wrapper (sh blocks every signal around a fork)
        status = proc_status(runner.pid)
        blocked, caught = int(status["SigBlk"], 16), int(status["SigCgt"], 16)
        return bool(blocked & sigterm) and not caught & sigterm

    wait_for(starting, 10, "a runner that holds SIGTERM and has no handler yet")
    runner.signal(signal.SIGTERM)
    assert runner.wait_exit() == 0
    (stopped,) = runner.events("worker_draining") + runner.events("recovery_stopped")
    assert stopped["reason"] == "SIGTERM"
