"""``run --local``'s one pipeline: submitted to the embedded service, then watched.

Owns: ``put_checked`` (create and put, every problem the service names made a
``ConfigError``, exit 78: ``exec``'s whole-definition check uses it too),
``submit`` (the definition's secret values masked first, then create, put and
activate), and ``PipelineWatch``, ``run --local``'s ``lifecycle.Watcher``: its
``prepare`` submits (a refused definition leaves no work dir behind), its
``start`` watches the pipeline to its end on a ``local-watch`` thread.

Must not: build or start the runner (``lifecycle.Lifecycle`` does, and hands it
the runner), import ``runner.localservice`` (the island rule: only the endpoint
is known here), exit, echo, or import click.

Why apart from ``localrun``: ``localrun`` is the command (settings, the embedded
service, the summary); what is submitted and how it is watched is one concept of
its own, shared with ``exec``. Split from ``localrun.py`` by concept (issue 23).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from runner import dispatcher, logs
from runner.aws import management
from runner.aws.client import Client
from runner.definitionquery import secret_values
from runner.errors import ConfigError
from runner.localdelivery import DeliveryWatch
from runner.localshow import make_watch
from runner.localwatch import start_watch
from runner.pipelinefile import Definition

#: How long ``run --local`` waits for its pipeline, in real seconds.
LOCAL_RUN_LIMIT_S = 3600.0


def put_checked(client: Client, defn: Definition, name: str, token: str) -> str:
    """Create a pipeline and put the definition to it; its id. ``ConfigError``
    (exit 78) naming each problem when the service refuses the definition."""
    pipeline_id = management.create_pipeline(client, name, token)
    answer = management.put_pipeline_definition(
        client,
        pipeline_id,
        defn.pipeline_objects,
        defn.parameter_objects,
        defn.parameter_values,
    )
    problems = [
        f"{item.get('id')}: {error}"
        for item in answer.get("validationErrors", [])
        for error in item.get("errors", [])
    ]
    if answer.get("errored") or problems:
        raise ConfigError("the definition is invalid:\n  " + "\n  ".join(problems))
    return pipeline_id


def submit(
    client: Client, defn: Definition, name: str, token: str | None = None
) -> str:
    """Create, put and activate; ``ConfigError`` when the definition is refused.
    ``token``: the CreatePipeline ``uniqueId`` (default: a new one).

    First, the definition's secret values (``*my…`` parameters, what ``*`` fields
    use) are masked in every log line from now on (``logs.mask_values``): the
    put's body carries them, and botocore logs bodies at debug level; so do the
    task objects the runner will receive."""
    logs.mask_values(secret_values(defn))
    token = token or f"dp-runner-local-{uuid.uuid4()}"
    pipeline_id = put_checked(client, defn, name, token)
    management.activate_pipeline(client, pipeline_id, defn.parameter_values)
    return pipeline_id


def submit_or_clean_up(
    client: Client, defn: Definition, name: str, made: Path | None
) -> str:
    """``submit``; a refused definition leaves no work dir behind."""
    try:
        return submit(client, defn, name)
    except ConfigError:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


class PipelineWatch:
    """``run --local``'s watcher (``lifecycle.Watcher``): ``prepare`` submits the
    definition (a refused one leaves no work dir behind) and listens for failed
    deliveries; ``start`` watches the pipeline on a ``local-watch`` thread, which
    queues ``LOCAL_RUN_ENDED`` once every instance has ended."""

    def __init__(
        self,
        defn: Definition,
        definition: Path,
        time_scale: float,
        *,
        made: Path | None,
        delivery: DeliveryWatch,
        endpoint_url: str,
        shown: bool,
    ) -> None:
        self._defn = defn
        self._definition = definition
        self._time_scale = time_scale
        self._made = made
        self._delivery = delivery
        self._endpoint_url = endpoint_url
        self._shown = shown
        #: The submitted pipeline, once ``prepare`` has submitted it.
        self.pipeline_id = ""

    def prepare(self, runner: dispatcher.Runner) -> dict[str, Any]:
        self._delivery.install()
        definition = self._definition
        self.pipeline_id = submit_or_clean_up(
            runner.client, self._defn, definition.stem, self._made
        )
        runner.log.info(
            "local_pipeline_submitted",
            pipeline_id=self.pipeline_id,
            definition=str(definition),
            work_dir=str(runner.settings.work_dir),
        )
        if runner.say is not None:
            runner.say(
                f"{definition}: pipeline {self.pipeline_id} on a local service at "
                f"{self._endpoint_url}, its clock x{self._time_scale:g}; "
                "Ctrl-C drains"
            )
        return {}

    def start(self, runner: dispatcher.Runner) -> None:
        root = runner.work_dir.root
        watch = make_watch(
            self._defn, self._time_scale, root, self.pipeline_id, shown=self._shown
        )
        start_watch(
            runner.client,
            self.pipeline_id,
            runner.shutdown.requested,
            runner.signals.inbox,
            runner.log,
            runner.say,
            LOCAL_RUN_LIMIT_S,
            watch,
        )

    def stop(self) -> None:
        """Nothing: the watch thread ends with the shutdown it waits on."""
