"""``dp-runner run --local PIPELINE.json``: the one-command demo.

Starts the local Data Pipeline service in this process on an ephemeral loopback port,
submits the definition file over the real wire protocol (CreatePipeline,
PutPipelineDefinition, ActivatePipeline), serves the definition's worker groups with a
real ``Worker`` until every instance has ended, prints a table of instances, and says
whether all of them FINISHED.

It is built from the same parts as a production runner, so the demo proves the real
path: only the endpoint and the service's clock differ. Service time is scaled (by
default a hundredth), so that a step retried after the service's 2-minute minimum
``retryDelay`` finishes in about a second. The runner's own heartbeat is shortened to
match, so that three beats fit in the scaled ``reportProgressTimeout``.

Parameter values come as ``aws datapipeline put-pipeline-definition`` takes them:
``--parameter-values myX=v myY=w`` (several after one flag; a repeated id is an
array) or ``--parameter-values-uri file://values.json`` (``{"values": {...}}``).
Either replaces the file's own ``values`` as a whole, as the AWS CLI does: a run
takes one set of values, and the same flags give the same pipeline on AWS.

Its end takes the daemon's one path: once every instance has ended, the watch thread
queues ``LOCAL_RUN_ENDED`` in the dispatcher's inbox, exactly as a signal would be.

Must not import ``runner.localservice`` at module level: ``run`` without ``--local``
must not pay for the service. Its flags' defaults and spelling are ``localflags``'s,
so that the CLI builds its options without importing this module.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.aws.session import new_session
from runner.config import Settings, load_settings
from runner.definitionquery import worker_groups
from runner.errors import ConfigError
from runner.lifecycle import Lifecycle
from runner.localdelivery import DeliveryWatch
from runner.localflags import RUNS_ON_GROUP
from runner.localpipeline import PipelineWatch
from runner.localshow import RunSummary
from runner.localwatch import instance_rows
from runner.pipelinefile import (
    Definition,
    load_definition,
    load_values,
    values_from_pairs,
)

if TYPE_CHECKING:
    from runner.localservice import LocalService

#: What the runner signs its calls to the embedded service with. The service does not
#: check signatures, so the demo needs no AWS account, and real credentials from
#: boto3's chain are never sent to it. S3 (staging) still uses the chain.
LOCAL_CREDENTIALS = ("dp-runner-local", "the-local-service-checks-no-signature")


def run(  # noqa: PLR0917 - the CLI's options, passed on
    config_file: Path | None,
    overrides: dict[str, Any],
    definition: Path,
    defn: Definition,
    time_scale: float,
    say: Callable[[str], None] | None = None,
    *,
    quiet: bool = False,
) -> RunSummary:
    """The embedded service, one pipeline, served to its end. ``say`` writes a
    line for a person: used when the output is for people (``for_people``),
    where the runner's own lines drop to warnings. ``quiet``: no attempt's
    output on the terminal. Raises ``ConfigError``."""
    service = start_service(time_scale)
    delivery = DeliveryWatch()
    try:
        settings = local_settings(
            config_file, overrides, service.endpoint_url, defn, time_scale
        )
        people = for_people(settings)
        say = say if people else None
        watch = PipelineWatch(
            defn,
            definition,
            time_scale,
            made=made_dir(overrides, settings),
            delivery=delivery,
            endpoint_url=service.endpoint_url,
            shown=not quiet,
        )
        runner = Lifecycle(
            settings,
            watch,
            session=new_session(settings.region, LOCAL_CREDENTIALS),
            say=say,
        ).run()
        rows = instance_rows(runner.client, watch.pipeline_id)
    finally:
        delivery.remove()
        service.stop()
    # the root: dp-runner-<uid> when the work dir is a folder of another user
    return RunSummary(
        rows,
        runner.work_dir.root,
        made_dir(overrides, settings),
        delivery.failed(),
        people,
    )


def made_dir(overrides: dict[str, Any], settings: Settings) -> Path | None:
    """The work dir this run made (None: ``--work-dir`` named one)."""
    return None if "work_dir" in overrides else settings.work_dir


def for_people(settings: Settings) -> bool:
    """Whether ``run --local`` talks to a person: console logs, asked for or
    chosen by ``auto`` because stdout is a terminal."""
    if settings.log_format == "auto":
        return sys.stdout.isatty()
    return settings.log_format == "console"


def clean_up(outcome: RunSummary, *, keep: bool) -> bool:
    """Remove the work dir the run made, unless ``keep``, an instance did not
    finish (its attempts' folders are what you look at next), or a log or
    output location failed (the work dir is then where they are); True if
    removed."""
    if keep or outcome.made_dir is None or not outcome.finished or outcome.lost:
        return False
    shutil.rmtree(outcome.made_dir, ignore_errors=True)
    return not outcome.made_dir.exists()


def local_settings(
    config_file: Path | None,
    overrides: dict[str, Any],
    endpoint_url: str,
    defn: Definition,
    time_scale: float,
) -> Settings:
    """Settings for the demo: the embedded endpoint, the definition's groups, and
    runner clocks scaled like the service's."""
    base = load_settings(config_file=config_file, overrides=overrides)
    quiet = for_people(base) and "log_level" not in base.model_fields_set
    local: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region": base.region or "us-east-1",
        "worker_groups": groups_to_serve(defn),
        "heartbeat_interval": min(base.heartbeat_interval, max(0.1, 60 * time_scale)),
        "lease_timeout": min(base.lease_timeout, max(3.0, 240 * time_scale)),
        "runner_heartbeat_interval": min(
            base.runner_heartbeat_interval, max(1.0, 900 * time_scale)
        ),
        "drain_timeout": min(base.drain_timeout, 10.0),
    }
    if quiet:  # the watch's lines tell a person what happens; warnings remain
        local["log_level"] = "warning"
    if "work_dir" not in overrides:
        local["work_dir"] = Path(tempfile.mkdtemp(prefix="dp-runner-local-"))
    # validated again, but the file is read once (it may be a pipe)
    return Settings.model_validate({**base.model_dump(), **local})


def start_service(time_scale: float) -> LocalService:
    """The embedded service: loopback, ephemeral port, throwaway state.
    ``ConfigError`` for a ``time_scale`` that is not above 0."""
    if time_scale <= 0:
        raise ConfigError(f"time_scale={time_scale} from --time-scale: must be > 0")
    # imported here: the server, SQLite and the expression parser cost a daemon
    # that never runs --local about 2 MB of RSS (tests/test_lazy_imports.py)
    from runner.localservice import LocalService  # noqa: PLC0415 - see above

    service = LocalService(
        host="127.0.0.1",
        port=0,
        state_path=None,
        time_scale=time_scale,
        poll_hold_s=1.0,
        runs_on_worker_group=RUNS_ON_GROUP,
    )
    service.start()
    return service


def groups_to_serve(defn: Definition) -> list[str]:
    """The definition's worker groups, plus the one that ``runsOn`` maps to."""
    return sorted({*worker_groups(defn), RUNS_ON_GROUP})


def load(
    path: Path, *, pairs: Sequence[str] = (), values_uri: str | None = None
) -> Definition:
    """The definition file, its ``values`` replaced by the ``ID=VALUE`` pairs of
    ``--parameter-values``, or by the values file ``values_uri`` names
    (``file://PATH``, or a plain path). ``ConfigError`` (exit 78) when a file
    cannot be read or is not what it should be (the message names it), or for a
    pair without ``=``."""
    values: list[dict[str, Any]] | None = None
    try:
        defn = load_definition(path)
        if values_uri is not None:
            location = values_uri.removeprefix("file://")
            if "://" in location:
                raise ConfigError(f"{values_uri}: only file:// values files are read")
            values = load_values(Path(location))
    except ValueError as exc:  # a DefinitionError, which names the file
        raise ConfigError(str(exc)) from exc
    if pairs:
        try:
            values = values_from_pairs(pairs)
        except ValueError as exc:
            raise ConfigError(f"--parameter-values: {exc}") from exc
    if values is None:
        return defn
    return dataclasses.replace(defn, parameter_values=values)
