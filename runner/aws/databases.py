"""Where a database named by an AWS id lives: RDS DescribeDBInstances and Redshift
DescribeClusters.

Owns: ``describe_db_instance`` and ``describe_cluster``, each turning an id (and a
region) into an ``Endpoint``: host, port, engine and the database the instance was
created with. Endpoints and credentials come from boto3's chain, so
``AWS_ENDPOINT_URL_RDS`` / ``AWS_ENDPOINT_URL_REDSHIFT`` work as with any tool.

Must not: connect to the database, or know about tasks: ``activities/database.py``
reads the task's fields and decides what the engine means.

Why this way: RdsDatabase and RedshiftDatabase name a database by its AWS id, as
the Java runner resolves them. The lookup is one short call, retried by the one
tenacity helper on throttling, 5xx and broken connections, its backoff cut short by
the attempt's stop; every failure (unknown id, refused credentials, no endpoint
yet) is ``ActivityError("DatabaseLookupFailed")`` naming the id, so the attempt
FAILS with a reason a person can act on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.config

from runner.aws.retries import RetryPolicy, call_with_retries
from runner.aws.session import new_session
from runner.aws.translate import FOREIGN_ERRORS, translate
from runner.errors import ActivityError, RunnerError, TransientServiceError

LOOKUP_ERROR = "DatabaseLookupFailed"
_POLICY = RetryPolicy(attempts=4, budget_s=30.0, wait_initial_s=0.5, wait_max_s=5.0)
_CONFIG = botocore.config.Config(
    connect_timeout=5,
    read_timeout=20,
    retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries
)
_NEVER = threading.Event()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a database listens. ``engine`` is AWS's name for it (``postgres``,
    ``mysql``, ``aurora-postgresql``, ``redshift``...)."""

    host: str
    port: int
    engine: str
    database: str | None


def describe_db_instance(
    instance_id: str, region: str | None, *, stop: threading.Event | None = None
) -> Endpoint:
    """The endpoint of the RDS instance ``instance_id``. Blocks (short timeouts);
    raises ``ActivityError(DatabaseLookupFailed)``."""
    answer = _call(
        "rds",
        region=region,
        operation="DescribeDBInstances",
        fn=lambda client: client.describe_db_instances(
            DBInstanceIdentifier=instance_id
        ),
        what=f"RDS instance {instance_id!r}",
        stop=stop,
    )
    return _endpoint(
        answer.get("DBInstances") or [], f"RDS instance {instance_id!r}", 0, None
    )


def describe_cluster(
    cluster_id: str, region: str | None, *, stop: threading.Event | None = None
) -> Endpoint:
    """The endpoint of the Redshift cluster ``cluster_id``. Blocks (short
    timeouts); raises ``ActivityError(DatabaseLookupFailed)``."""
    answer = _call(
        "redshift",
        region=region,
        operation="DescribeClusters",
        fn=lambda client: client.describe_clusters(ClusterIdentifier=cluster_id),
        what=f"Redshift cluster {cluster_id!r}",
        stop=stop,
    )
    return _endpoint(
        answer.get("Clusters") or [],
        f"Redshift cluster {cluster_id!r}",
        5439,
        "redshift",
    )


def _endpoint(
    found: list[Any], what: str, default_port: int, engine: str | None
) -> Endpoint:
    """The ``Endpoint`` of the first of ``found`` (DescribeDBInstances'
    ``DBInstances`` or DescribeClusters' ``Clusters``: the same shape);
    ``engine`` None: its own ``Engine``."""
    where = found[0].get("Endpoint") if found else None
    if not where or not where.get("Address"):
        raise ActivityError(LOOKUP_ERROR, f"{what} has no endpoint (yet)")
    return Endpoint(
        host=str(where["Address"]),
        port=int(where.get("Port") or default_port),
        engine=engine if engine is not None else str(found[0].get("Engine") or ""),
        database=found[0].get("DBName"),
    )


def _call(
    service: str,
    *,
    region: str | None,
    operation: str,
    fn: Callable[[Any], dict[str, Any]],
    what: str,
    stop: threading.Event | None,
) -> dict[str, Any]:
    """One lookup on a client made for it (dropped after), errors translated."""
    try:
        client = new_session(region).client(service, config=_CONFIG)
    except FOREIGN_ERRORS as exc:
        raise ActivityError(
            LOOKUP_ERROR, f"{what}: {translate(operation, exc)}"
        ) from exc

    def attempt() -> dict[str, Any]:
        try:
            return fn(client)
        except FOREIGN_ERRORS as exc:
            raise translate(operation, exc) from exc

    try:
        return call_with_retries(
            attempt,
            _POLICY,
            retry_on=TransientServiceError,
            interrupt=(stop or _NEVER,),
            on_retry=lambda *_: None,
        )
    except RunnerError as exc:  # every way a lookup fails is one errorId
        raise ActivityError(LOOKUP_ERROR, f"{what}: {exc}") from exc


def copy_credentials(region: str | None) -> dict[str, str] | None:
    """The runner's own credentials from boto3's chain, frozen now, for Redshift's
    COPY and UNLOAD: ``key_id``, ``secret`` and ``token`` (when temporary); None
    when the chain has none. Never logged: the database child masks them."""
    try:
        found = new_session(region).get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except FOREIGN_ERRORS as exc:
        raise ActivityError(
            "CredentialsUnavailable", f"no AWS credentials for COPY: {exc}"
        ) from exc
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        return None
    made = {"key_id": frozen.access_key, "secret": frozen.secret_key}
    if frozen.token:
        made["token"] = frozen.token
    return made
