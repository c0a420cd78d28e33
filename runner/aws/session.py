"""boto3 sessions and the Data Pipeline client, made one way.

Owns: ``new_session(region)``, the ``boto3.Session`` that ``client.py``, ``s3.py``
and the other AWS modules build their clients from, and ``datapipeline_client``,
the botocore client that ``client.py`` calls through: botocore's retries off, our
timeouts, cut answers refused.

Must not: change how credentials and the region are found (boto3's chain, unless
credentials are given), nor keep the session: its callers drop it once their
clients exist.

Why: one place where the runner's sessions are made, so that a client's settings
(timeouts, retries, the user agent, the answer checks) are never made twice. An
earlier version kept botocore's endpoint table out of the session's loader cache
(a ``Loader`` subclass, about 2 MB of idle RSS); issue 23 removed it: machinery for
a figure no user notices.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config

from runner import __version__
from runner.aws.pollanswer import mend_poll_answer
from runner.aws.translate import refuse_cut_answer

MAX_POOL_CONNECTIONS = 16  # pollers, per-task heartbeats and final statuses at once


def new_session(region: str | None, credentials: tuple[str, str] | None = None) -> Any:
    """``boto3.Session(region_name=region)``; with ``credentials`` (an access key
    id and a secret key) instead of boto3's chain. Untyped: boto3 ships no stubs."""
    if credentials is None:
        return boto3.Session(region_name=region)
    key_id, secret = credentials
    return boto3.Session(
        region_name=region, aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def datapipeline_client(
    session: Any, region: str, endpoint_url: str | None, connect_s: float, read_s: float
) -> Any:
    """A datapipeline client: no botocore retries, our timeouts, cut answers refused."""
    cfg = botocore.config.Config(
        connect_timeout=connect_s,
        read_timeout=read_s,
        retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity retries
        user_agent_extra=f"dp-runner/{__version__}",
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    dp = session.client("datapipeline", region, endpoint_url=endpoint_url, config=cfg)
    dp.meta.events.register("before-parse.data-pipeline", refuse_cut_answer)
    dp.meta.events.register("before-parse.data-pipeline.PollForTask", mend_poll_answer)
    return dp


def credential_secrets(session: Any) -> tuple[str, ...]:
    """The secret parts of the credentials ``session`` resolves now (the secret
    access key, the session token); empty when there are none. Credentials that
    refresh later bring new values: the log never shows botocore's DEBUG lines,
    which are where they would appear (``logs.NOISY_LOGGERS``)."""
    credentials = session.get_credentials()
    if credentials is None:
        return ()
    frozen = credentials.get_frozen_credentials()
    return tuple(v for v in (frozen.secret_key, frozen.token) if v)
