"""A real task leased from the local service, and a runner ``Client`` for it: what
the unit tests of ``task/`` (progress, commit, recovery) start from."""

from __future__ import annotations

import threading
from typing import Any

from runner import logs
from runner.aws.client import Client, RetryPolicies
from tests.support.pipelines import default_object, shell, submit
from tests.support.waiting import wait_for


def new_client(endpoint_url: str, policies: RetryPolicies | None = None) -> Client:
    """The runner's client for the service, with zero-wait retries by default."""
    return Client(
        region="us-east-1",
        endpoint_url=endpoint_url,
        stop=threading.Event(),
        abort=threading.Event(),
        policies=policies or RetryPolicies.fast(),
        log=logs.get_logger("test"),
    )


def leased_task(dp: Any, worker_group: str, command: str = "true") -> dict[str, Any]:
    """A one-activity pipeline submitted, and its task polled (leased, not acked)."""
    objects = [default_object(worker_group), shell("Step", command)]
    submit(dp, objects)
    task: dict[str, Any] = wait_for(
        lambda: dp.poll_for_task(workerGroup=worker_group).get("taskObject"),
        what="a task",
    )
    return task
