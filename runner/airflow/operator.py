"""The Airflow side of an exported DAG: operators that run ``dp-runner exec``.

Owns: ``DpRunnerExecOperator`` (one activity, one slot: ``dp-runner exec`` as a
subprocess, its output in the task log), ``DpRunnerPreconditionSensor`` (a
precondition: each poke is an ``exec`` of it, exit 3 means "not yet"),
``NotTranslatedOperator`` (fails at once with the reason), ``SnsAlarm`` (an
``onFail``/``onSuccess`` callback that publishes through ``runner.aws.sns``),
``deadline_alerts`` (``lateAfterTimeout`` + ``onLateAction``: a DeadlineAlert on
the DAG run whose callback, ``publish_late``, runs on the triggerer; none on
Airflow 2.x, which has no deadline alerts: see ``runner.airflow.alarms``), and
the two timetables the DAG file uses, imported where the Airflow version keeps
them.

How a task runs: the DAG's ``DEFINITION`` is written to a private temporary
file; ``--scheduled-start`` is the run's ``data_interval_start`` (the slot's
``@scheduledStartTime``, see ``schedule``); ``--pipeline-id`` is the DAG run's
own (``run_pipeline_id``: the same for every task and attempt of one run,
another for each run), so ``@pipelineId``, ``DP_PIPELINE_ID`` and the log path
under ``pipelineLogUri`` tie an attempt to its run; each masked parameter's
value is read from its Airflow Variable, registered with Airflow's secret
masker, and handed to ``exec`` as ``DP_PARAMETER_<name>``, never on the command
line. The subprocess
dies with the task process (``PR_SET_PDEATHSIG``, which the kernel enforces); a
stop (Airflow's ``on_kill``: SIGTERM to the task, a timeout) sends SIGTERM to
``exec``, which kills the activity's tree within ``kill_grace`` and exits 5; the
operator waits ``kill_grace`` + 5 s for it, then kills it.

Must not: be imported outside Airflow (it imports airflow at module level: the
``airflow`` extra); import boto3 (``runner.aws`` does, lazily, in the callback).

Exit codes of exec (docs/exec.md): 0 done; 3 precondition FALSE; 4 FAILED and 5
stopped (Airflow retries both); 78 and 2 a definition or usage error (no retry:
the next attempt would fail the same way).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

try:  # Airflow 3.x
    from airflow.sdk import BaseOperator, BaseSensorOperator, Variable
    from airflow.sdk import DeltaDataIntervalTimetable as _Interval
    from airflow.sdk import DeltaTriggerTimetable as _Trigger
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.x (MWAA)
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
    )
    from airflow.models import BaseOperator, Variable
    from airflow.sensors.base import BaseSensorOperator
    from airflow.timetables.interval import (
        DeltaDataIntervalTimetable as _Interval,
    )
    from airflow.timetables.trigger import (
        DeltaTriggerTimetable as _Trigger,
    )
    from airflow.utils.log.secrets_masker import mask_secret
try:  # Airflow 3.1+: deadline alerts on the DAG run
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    HAS_DEADLINES = True
except ImportError:  # Airflow 2.x, 3.0: none (the export reports them not carried)
    HAS_DEADLINES = False

EXIT_FALSE = 3
EXIT_NO_RETRY = frozenset({2, 78})
DEFAULT_KILL_GRACE_S = 10.0
#: Beyond ``kill_grace``: how long exec may take to report and exit after a stop.
STOP_SLACK_S = 5.0
_PR_SET_PDEATHSIG = 1


def run_pipeline_id(dag_id: str, run_id: str) -> str:
    """The pipeline id of one DAG run, as AWS spells one (``df-`` and 21
    capitals and digits): a digest of the DAG id and the run id, so every task
    of the run gets the same, and another run another."""
    digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).digest()
    return "df-" + base64.b32encode(digest).decode("ascii")[:21]


def data_interval_timetable(period: Any) -> Any:
    """timeseries: one run at the end of each slot of ``period``."""
    return _Interval(period)


def trigger_timetable(period: Any) -> Any:
    """cron: one run at the start of each slot of ``period``."""
    return _Trigger(period)


class _Exec:
    """One ``dp-runner exec`` subprocess, stoppable from ``on_kill``."""

    def __init__(self, kill_grace: float) -> None:
        self.kill_grace = kill_grace
        self.process: subprocess.Popen[str] | None = None

    def run(self, argv: Sequence[str], env: Mapping[str, str], log: Any) -> int:
        """Run ``argv``; each output line goes to ``log``; the exit code."""
        self.process = subprocess.Popen(  # noqa: S603 - argv, no shell
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl, no locks
        )
        assert self.process.stdout is not None  # noqa: S101 - PIPE above
        for line in self.process.stdout:
            log.info("%s", line.rstrip("\n"))
        return self.process.wait()

    def stop(self) -> None:
        """SIGTERM to exec, which stops its tree; SIGKILL after the bound."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.kill_grace + STOP_SLACK_S)
        except subprocess.TimeoutExpired:
            process.kill()


class _ExecMixin:
    """What the operator and the sensor share: the argv and the environment."""

    definition: Mapping[str, Any]
    object_id: str
    secrets: Mapping[str, str]
    kill_grace: float
    _runner: _Exec

    def _bind(
        self,
        definition: Mapping[str, Any],
        object_id: str,
        secrets: Mapping[str, str] | None,
        kill_grace: float,
    ) -> None:
        """The fields both keep; each class's own ``__init__`` still names its
        arguments, as Airflow reads them from the signature."""
        self.definition = definition
        self.object_id = object_id
        self.secrets = dict(secrets or {})
        self.kill_grace = kill_grace
        self._runner = _Exec(kill_grace)

    def _fail(self, code: int) -> NoReturn:
        """A failed exec: no retry for a definition or usage error (78, 2)."""
        message = f"dp-runner exec --object {self.object_id}: exit {code}"
        if code in EXIT_NO_RETRY:
            raise AirflowFailException(message)
        raise AirflowException(message)

    def on_kill(self) -> None:
        """Airflow stops the task: the exec's tree gets SIGTERM, then a kill."""
        self._runner.stop()

    def _exec_code(self, context: Mapping[str, Any], runner: _Exec, log: Any) -> int:
        start = context.get("data_interval_start") or context.get("logical_date")
        if start is None:
            raise AirflowFailException("the run has no data_interval_start")
        pipeline_id = run_pipeline_id(context["dag"].dag_id, context["run_id"])
        env = dict(os.environ)
        env.update(self._secret_env())
        with tempfile.TemporaryDirectory(prefix="dp-runner-dag-") as folder:
            path = Path(folder) / "definition.json"
            path.write_text(json.dumps(self.definition), encoding="utf-8")
            argv = [
                sys.executable, "-m", "runner", "exec", str(path),
                "--object", self.object_id,
                "--scheduled-start", start.isoformat(),
                "--pipeline-id", pipeline_id,
                "--kill-grace", str(self.kill_grace),
            ]  # fmt: skip
            return runner.run(argv, env, log)

    def _secret_env(self) -> dict[str, str]:
        """``DP_PARAMETER_<name>`` for each masked parameter, each value masked."""
        env = {}
        for name, variable in self.secrets.items():
            value = Variable.get(variable)
            mask_secret(value)
            env["DP_PARAMETER_" + name.removeprefix("*")] = value
        return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the task process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class DpRunnerExecOperator(_ExecMixin, BaseOperator):  # type: ignore[misc]
    """One activity of the definition, for the run's slot, by ``dp-runner exec``."""

    ui_color = "#d9ead3"

    def __init__(
        self,
        *,
        definition: Mapping[str, Any],
        object_id: str,
        secrets: Mapping[str, str] | None = None,
        kill_grace: float = DEFAULT_KILL_GRACE_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bind(definition, object_id, secrets, kill_grace)

    def execute(self, context: Any) -> None:
        code = self._exec_code(context, self._runner, self.log)
        if code == 0:
            return
        self._fail(code)


class DpRunnerPreconditionSensor(_ExecMixin, BaseSensorOperator):  # type: ignore[misc]
    """A precondition: each poke runs ``dp-runner exec`` of it; exit 3 is
    "not yet", 0 "holds", anything else fails the sensor."""

    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        definition: Mapping[str, Any],
        object_id: str,
        secrets: Mapping[str, str] | None = None,
        kill_grace: float = DEFAULT_KILL_GRACE_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bind(definition, object_id, secrets, kill_grace)

    def poke(self, context: Any) -> bool:
        code = self._exec_code(context, self._runner, self.log)
        if code in {0, EXIT_FALSE}:
            return code == 0
        self._fail(code)


class NotTranslatedOperator(BaseOperator):  # type: ignore[misc]
    """An object with no mapping (EMR, Hive, Pig, Hadoop, Redshift-only): the task
    fails with the reason, so the DAG never pretends to have run it."""

    ui_color = "#f4cccc"

    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.reason)


class SnsAlarm:
    """An ``onFail``/``onSuccess`` SnsAlarm: a callback that publishes the
    subject and message to the topic, with the worker's AWS credentials (the
    region is the topic ARN's)."""

    def __init__(self, topic_arn: str, *, subject: str, message: str) -> None:
        self.topic_arn = topic_arn
        self.subject = subject
        self.message = message

    def __call__(self, context: Any) -> None:
        from runner.aws import sns  # noqa: PLC0415 - boto3 only when an alarm fires

        sns.publish(self.topic_arn, self.subject, self.message)


@dataclass(frozen=True, slots=True)
class LateAlarm:
    """One ``onLateAction`` SnsAlarm of an activity: published when the DAG run
    has not finished ``after_s`` (``lateAfterTimeout``) after its logical date,
    the slot's ``@scheduledStartTime``."""

    object_id: str
    after_s: float
    topic_arn: str
    subject: str = ""
    message: str = ""


def deadline_alerts(*alarms: LateAlarm) -> dict[str, Any]:
    """The DAG's ``deadline`` argument: a DeadlineAlert per late alarm, where the
    Airflow version has them (3.1+); ``{}`` on 2.x, whose export lists them as
    not carried."""
    if not HAS_DEADLINES or not alarms:
        return {}
    return {
        "deadline": [
            DeadlineAlert(
                reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
                interval=dt.timedelta(seconds=alarm.after_s),
                callback=AsyncCallback(
                    publish_late,
                    kwargs={
                        "object_id": alarm.object_id,
                        "topic_arn": alarm.topic_arn,
                        "subject": alarm.subject,
                        "message": alarm.message,
                    },
                ),
            )
            for alarm in alarms
        ]
    }


async def publish_late(
    object_id: str,
    topic_arn: str,
    subject: str,
    message: str,
    context: Mapping[str, Any] | None = None,
) -> str:
    """A missed deadline (on the triggerer, which awaits it): the onLateAction
    alarm published through boto3, off the triggerer's event loop; the
    MessageId."""
    from runner.aws import sns  # noqa: PLC0415 - boto3 only when an alarm fires

    del object_id, context  # what it was for, kept in the callback's record
    return await asyncio.to_thread(sns.publish, topic_arn, subject, message)
