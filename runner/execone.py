"""``dp-runner exec DEFINITION --object ID --scheduled-start T``: one slot, here.

Owns: putting one ``exec`` together. It starts an embedded local service (real
clock; a start in the past is allowed, as a scheduler runs yesterday's slot),
checks the whole definition there as AWS would check it (PutPipelineDefinition
of a pipeline that is never activated: a dangling reference anywhere is exit
78), submits the one-slot definition ``execslot.cut`` makes, serves its private
worker group with a real runner (``lifecycle.Lifecycle``, as ``run`` does:
the same work dir, lock, journal, stops, staging, secrets rules and
containment; ``SlotWatch`` is its watcher), and waits for the verdict that
``execwatch`` commits. Parameters are taken as ``run
--local`` takes them (``localrun.load``), masked ones also from
``DP_PARAMETER_<name>``; expressions, parameters and staging variables are
evaluated by the service, as for a task from AWS.

A stop signal kills the running tree at once (the drain is 0 s: a scheduler's
stop means stop), within ``kill_grace``, and the verdict is then "stopped by a
signal" (exit 5) unless the instance had already ended: a committed verdict is
never rewritten.

Must not: import ``runner.localservice`` at module level (``cli`` imports this
module; ``run`` must not pay for the service) or anything of the service but
``LocalService`` (the island rule); exit, echo, or import click.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import dispatcher, execslot, localpipeline, localrun, logs
from runner.aws.client import Client
from runner.aws.session import new_session
from runner.config import Settings
from runner.definitionquery import secret_values
from runner.errors import ConfigError, RejectedRequestError, RunnerError
from runner.execslot import ExecUsageError, Slot, SlotError
from runner.execwatch import Answer, Verdict, signaled, start_slot_watch
from runner.lifecycle import Lifecycle
from runner.localflags import RUNS_ON_GROUP
from runner.pipelinefile import Definition

if TYPE_CHECKING:
    from runner.localservice import LocalService

GROUP_PREFIX = "dp-runner-exec-"


@dataclass(frozen=True, slots=True)
class ExecSummary:
    """How an ``exec`` ended: the verdict, the root of the attempts' folders, and
    the work dir it made for itself (None when ``--work-dir`` named one)."""

    verdict: Verdict
    work_dir: Path
    made_dir: Path | None


def load(
    path: Path, *, pairs: Sequence[str] = (), values_uri: str | None = None
) -> Definition:
    """The definition with its values, as ``run --local`` loads it, and masked
    values from ``DP_PARAMETER_<name>`` (those variables are then removed from
    this process's environment: no task inherits them). ``ExecUsageError`` for a
    masked value on the command line (``ps`` shows it to every user); the
    message names the parameter, never the value. ``ConfigError`` as ``load``."""
    for pair in pairs:
        name = pair.partition("=")[0]
        if name.startswith("*"):
            raise ExecUsageError(
                f"--parameter-values {name}=…: a masked value never goes on the "
                f"command line; set {execslot.MASKED_ENV_PREFIX}"
                f"{name.removeprefix('*')} or use --parameter-values-uri"
            )
    defn = localrun.load(path, pairs=pairs, values_uri=values_uri)
    defn, used = execslot.masked_from_environment(defn)
    for variable in used:
        os.environ.pop(variable, None)
    return defn


def slot_of(defn: Definition, target: str, start: str) -> Slot:
    """The one-slot definition of ``target`` at ``start`` (``--scheduled-start``,
    as given). ``ExecUsageError`` for a time that is not ISO 8601 or an object
    ``exec`` cannot run; ``ConfigError`` for a reference to no object."""
    try:
        when = execslot.scheduled_start(start)
    except ValueError as exc:
        raise ExecUsageError(f"--scheduled-start {start!r}: {exc}") from exc
    group = f"{GROUP_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        return execslot.cut(defn, target, when, group)
    except ExecUsageError:
        raise
    except SlotError as exc:
        raise ConfigError(f"the definition is invalid: {exc}") from exc


def run(  # noqa: PLR0917 - the CLI's options, passed on
    config_file: Path | None,
    overrides: dict[str, Any],
    definition: Path,
    defn: Definition,
    slot: Slot,
    say: Callable[[str], None] | None = None,
    pipeline_id: str | None = None,
) -> ExecSummary:
    """The embedded service, the slot, served to its verdict. ``say`` writes a
    line for a person (``localrun.for_people``); ``pipeline_id`` is the id the
    slot runs under (``--pipeline-id``; default: a new one). Raises
    ``ConfigError`` (the definition refused, a bad setting) and ``RunnerError``
    when it ended without a verdict (exit 1)."""
    token = f"dp-runner-exec-{uuid.uuid4()}"
    service = start_service({token: pipeline_id} if pipeline_id else None)
    try:
        settings = exec_settings(config_file, overrides, service.endpoint_url, slot)
        watch = SlotWatch(defn, slot, definition, token)
        runner = Lifecycle(
            settings,
            watch,
            session=new_session(settings.region, localrun.LOCAL_CREDENTIALS),
            say=say if localrun.for_people(settings) else None,
        ).run()
    finally:
        service.stop()
    verdict = watch.answer.verdict or signaled(runner.shutdown.reason)
    if verdict is None:
        raise RunnerError(f"{slot.instance_id}: exec ended without a verdict")
    made = None if "work_dir" in overrides else settings.work_dir
    return ExecSummary(verdict, runner.work_dir.root, made)


class SlotWatch:
    """``exec``'s watcher (``lifecycle.Watcher``): ``prepare`` checks the whole
    definition and submits the slot's; ``start`` watches the slot on an
    ``exec-watch`` thread, which commits the verdict to ``answer`` and then
    queues ``LOCAL_RUN_ENDED``."""

    def __init__(
        self, defn: Definition, slot: Slot, definition: Path, token: str
    ) -> None:
        self._defn = defn
        self._slot = slot
        self._definition = definition
        self._token = token  # the slot's pipeline's uniqueId (``--pipeline-id``)
        self._pipeline_id = ""
        #: The verdict, once the watch has committed one.
        self.answer = Answer()

    def prepare(self, runner: dispatcher.Runner) -> dict[str, Any]:
        logs.mask_values(secret_values(self._defn))
        self._pipeline_id = _submit(
            runner.client, self._defn, self._slot, self._definition.stem, self._token
        )
        _started(runner, self._pipeline_id, self._definition, self._slot)
        return {}

    def start(self, runner: dispatcher.Runner) -> None:
        start_slot_watch(
            runner.client,
            self._pipeline_id,
            self._slot,
            runner.shutdown.requested,
            runner.signals.inbox,
            runner.log,
            runner.say,
            self.answer,
        )

    def stop(self) -> None:
        """Nothing: the watch thread ends with the shutdown it waits on."""


def _submit(client: Client, defn: Definition, slot: Slot, name: str, token: str) -> str:
    """Check the whole definition, then submit and activate the slot's (created
    with ``token`` as its uniqueId); what the service refuses is a
    ``ConfigError`` (exit 78)."""
    try:
        check_whole(client, defn, name)
        return localpipeline.submit(client, slot.definition, name, token)
    except RejectedRequestError as exc:
        raise ConfigError(f"the service refused the definition: {exc}") from exc


def _started(
    runner: dispatcher.Runner, pipeline_id: str, definition: Path, slot: Slot
) -> None:
    runner.log.info(
        "exec_submitted",
        pipeline_id=pipeline_id,
        definition=str(definition),
        object=slot.target,
        instance_id=slot.instance_id,
        work_dir=str(runner.settings.work_dir),
    )
    if runner.say is not None:
        runner.say(f"{definition}: {slot.instance_id}, on this host")


def start_service(pipeline_ids: dict[str, str] | None = None) -> LocalService:
    """The embedded service: loopback, ephemeral port, throwaway state, the real
    clock, and a past start allowed; ``pipeline_ids``: uniqueId -> the pipeline
    id it gets (``--pipeline-id``)."""
    # imported here: run without --local never pays for the service
    from runner.localservice import LocalService  # noqa: PLC0415 - see above

    service = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=None,
        time_scale=1.0,
        poll_hold_s=1.0,
        runs_on_worker_group=RUNS_ON_GROUP,
        refuse_old_starts=False,
        pipeline_ids=pipeline_ids,
    )
    service.start()
    return service


def exec_settings(
    config_file: Path | None, overrides: dict[str, Any], endpoint_url: str, slot: Slot
) -> Settings:
    """``run --local``'s settings on the real clock, serving only the slot's
    private worker group, with no drain: a stop signal kills at once."""
    base = localrun.local_settings(
        config_file, overrides, endpoint_url, slot.definition, 1.0
    )
    group = str(slot.worker_group)
    return Settings.model_validate(
        {**base.model_dump(), "worker_groups": [group], "drain_timeout": 0.0}
    )


def check_whole(client: Client, defn: Definition, name: str) -> None:
    """Put the whole definition to a pipeline that is never activated: what the
    service refuses (AWS would refuse it too) is a ``ConfigError``."""
    localpipeline.put_checked(
        client, defn, f"{name}-check", f"dp-runner-exec-check-{uuid.uuid4()}"
    )


def clean_up(outcome: ExecSummary, *, keep: bool) -> bool:
    """Remove the work dir the exec made when the slot FINISHED (or its
    precondition held), unless ``keep``; True if removed."""
    if keep or outcome.made_dir is None or outcome.verdict.code != 0:
        return False
    shutil.rmtree(outcome.made_dir, ignore_errors=True)
    return not outcome.made_dir.exists()
