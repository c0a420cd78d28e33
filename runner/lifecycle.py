"""The one lifecycle: ``run``, ``run --local`` and ``exec`` composed one way.

Owns: ``Lifecycle``, made with everything a run brings before anything is built
(its settings, the Data Pipeline session, the terminal view ``say`` and its
``Watcher``), and ``Lifecycle.run``, the one order: the signals installed, the
runner built (``daemon.build``), the log shipper, containment, the preflight, the
watcher's ``prepare`` (what it needs done before the worker: the EC2 identity, a
pipeline submitted), the start (``daemon.start``: the recovery, then the worker
and the listener), ready for systemd, the watcher's ``start``, the dispatcher until
the drain has ended, then the watcher's ``stop`` and the shipper's close. And
``serve`` (``dp-runner run``), whose watcher is ``Ec2Watch``.

Must not: set anything on what it built (a watcher is handed the runner as an
argument; nothing is patched on afterwards), exit, echo, or import click (``cli``
turns results into exit codes).

Why one: ``run`` and ``run --local`` used to compose the daemon twice, in
different orders, and ``exec`` a third time, each starting its own watcher between
the start and the dispatch (issue 23). What differs between them is what they
bring, not the order.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from runner import daemon, ec2, logship, supervisor, systemd
from runner.config import Settings
from runner.dispatcher import Runner, dispatch
from runner.signals import Signals


class Watcher(Protocol):
    """What a run brings beside its worker: ``prepare`` before the worker is
    started (its mapping goes to ``daemon.start``: the EC2 identity, the start-up
    line's details), ``start`` once it serves, ``stop`` after the drain."""

    def prepare(self, runner: Runner) -> dict[str, Any]: ...

    def start(self, runner: Runner) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Lifecycle:
    """One run, from the signals to the drain. ``session``: the boto3 session of
    the Data Pipeline client (``run --local`` and ``exec`` sign with dummy keys);
    None for boto3's chain. ``say``: a line for a person at a terminal."""

    settings: Settings
    watcher: Watcher
    session: Any = None
    say: Callable[[str], None] | None = None

    def run(self) -> Runner:
        """Serve until the drain has ended; the runner, for what the caller reads
        after it (its client, work dir and shutdown reason). Raises
        ``ConfigError`` (a bad setting, the service refusing the runner)."""
        signals = Signals()
        signals.install()
        runner = daemon.build(self.settings, signals, self.session, say=self.say)
        # the runner's own id: two runners on one host never ship to the same keys
        shipper = logship.start(
            self.settings.log_uri,
            s3=runner.s3,
            runner_id=runner.taskrunner_id,
            log=runner.log,
        )
        try:
            supervisor.contain()
            runner.runner_beat.preflight()
            details = self.watcher.prepare(runner)
            gc.collect()  # start-up's garbage: the sessions hold reference cycles
            serving = daemon.start(runner, **details)
            systemd.ready()
            self.watcher.start(runner)
            try:
                dispatch(serving)
            finally:
                self.watcher.stop()
        finally:
            if shipper is not None:
                shipper.close(logship.CLOSE_TIMEOUT_S)
        return runner


class Ec2Watch:
    """``run``'s watcher: on EC2, the instance's identity (sent with the runner
    heartbeat, named on the start-up line) and its interruption notices
    (``ec2.InstanceWatch``); elsewhere nothing."""

    def __init__(self) -> None:
        self._watch: ec2.InstanceWatch | None = None

    def prepare(self, runner: Runner) -> dict[str, Any]:
        metadata = ec2.metadata_service()
        identity = ec2.instance_identity(metadata, runner.log)
        sent = None
        if identity is not None and metadata is not None:
            self._watch = ec2.InstanceWatch(metadata, runner.signals.inbox, runner.log)
            sent = identity.to_api()
        return {
            "instance_identity": sent,
            "instance_id": identity.instance_id if identity else None,
        }

    def start(self, runner: Runner) -> None:
        if self._watch is not None:
            self._watch.start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()


def serve(settings: Settings) -> int:
    """The daemon: run until a signal or ``terminate`` drains it. Returns 0."""
    settings.require_worker_groups()
    Lifecycle(settings, Ec2Watch()).run()
    return 0
