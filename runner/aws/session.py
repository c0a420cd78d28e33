"""boto3 sessions whose data loader does not keep botocore's endpoint table.

Owns: ``new_session(region)``, the ``boto3.Session`` that ``client.py`` and ``s3.py``
build their clients from, and ``datapipeline_client``, the botocore client that
``client.py`` calls through: botocore's retries off, our timeouts, cut answers refused.

Must not: change what botocore loads (same files, same search path, ``AWS_DATA_PATH``
included) or how credentials and the region are found, nor keep the session: its
callers drop it once their clients exist.

Why: the first client of every botocore session parses ``botocore/data/endpoints.json``
(1.2 MB of JSON: every region of every AWS service, about 7 MB of dicts and strings)
for its ``EndpointResolver``, and the session's ``Loader`` caches the parsed table.
Every client keeps that loader (for paginators and waiters), so the table outlives
the session for as long as the client lives (boto/botocore#3078), although it is only
read while a client is being created. This loader reads the table without caching
it, so it lives in the session's resolver only, and is freed once the session is
collected (``cli/`` runs ``gc.collect()`` after start-up: the session holds
reference cycles). For the idle daemon that is about 2 MB less RSS; the rest of the
7 MB stays as pymalloc fragmentation. Should botocore stop loading the table through
``load_data_with_path``, the override is simply never called.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.session

from runner import __version__
from runner.aws.pollanswer import mend_poll_answer
from runner.aws.translate import refuse_cut_answer

ENDPOINTS = "endpoints"
MAX_POOL_CONNECTIONS = 16  # pollers, per-task heartbeats and final statuses at once


class EndpointsUncachedLoader(botocore.loaders.Loader):  # type: ignore[misc] # untyped base
    """botocore's ``Loader``, except that the endpoint table is read on every call
    (once per session: the session caches its ``EndpointResolver``)."""

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        if name != ENDPOINTS:
            return super().load_data_with_path(name)  # type: ignore[no-any-return] # untyped
        for base in self.search_paths:  # the order botocore's own lookup uses
            if os.path.isdir(base):
                path = os.path.join(base, name)
                found = self.file_loader.load_file(path)
                if found is not None:
                    return found, path
        raise botocore.exceptions.DataNotFoundError(data_path=name)


def new_session(region: str | None, credentials: tuple[str, str] | None = None) -> Any:
    """A ``boto3.Session`` like ``boto3.Session(region_name=region)``, with that
    loader; with ``credentials`` (an access key id and a secret key) instead of
    boto3's chain. Untyped: boto3 ships no stubs."""
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore
    extra = (
        [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
        if data_path
        else None
    )
    core.register_component(
        "data_loader", EndpointsUncachedLoader(extra_search_paths=extra)
    )
    if credentials is None:
        return boto3.Session(botocore_session=core, region_name=region)
    key_id, secret = credentials
    return boto3.Session(
        botocore_session=core,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
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
