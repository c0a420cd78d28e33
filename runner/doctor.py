"""``dp-runner doctor``: the Diagnose.jar of this runner, one line per check.

Owns: the checks, in order, and for each a verdict (``ok``, ``warn``, ``skip``,
``FAIL``), what was found, and the fix when it is not ``ok``: credentials and
identity (STS GetCallerIdentity); the region, the endpoint (the proxy in the way,
reachability, the clock against the endpoint's); the runner's permissions, probed
so that nothing changes (ReportTaskProgress and SetTaskStatus on a task id that
does not exist: TaskNotFound means allowed; ReportTaskRunnerHeartbeat with a
``doctor-`` id; PollForTask only when asked, on a worker group of its own); the
worker groups' spelling against the pipelines the account has, when ListPipelines
is allowed; the instance metadata service; the work dir.

Must not: run a task, touch a real task, or create the work dir. Its calls are
never retried: a diagnosis says what it met. Must not crash: each check is
``doctorchecks.guarded`` (an error becomes its ``FAIL`` line), and once the endpoint
has not answered, the checks that need it share one short deadline
(``doctorchecks.within``). The worker-group check is ``doctorgroups``. Against an
endpoint on loopback, as ``dp-runner local`` is, a failure expected there (no STS)
says so and does not count.

Why this order: each check explains the ones after it (no credentials explains
every refusal; an unreachable endpoint every permission it could not probe).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from runner.aws import identity, imds
from runner.aws.client import Client
from runner.doctorchecks import ONCE, Check, Named, guarded, said, within
from runner.doctorgroups import worker_groups
from runner.errors import (
    ConfigError,
    RunnerError,
    ServiceError,
    TaskNotFoundError,
    TransientServiceError,
)
from runner.wakeup import Wakeable

#: A clock this far from the endpoint's is refused by SigV4 (5 minutes), or near.
SKEW_FAIL_S, SKEW_WARN_S = 240.0, 30.0
#: Once the endpoint has not answered, the checks that need it share this much:
#: with STS and the endpoint silent too (4 s, asked at once), the doctor ends
#: within 15 s.
DEPENDENT_DEADLINE_S = 2.0
POLICY_FIX = (
    "allow it to the runner's role (the managed policy "
    "AWSDataPipeline_PowerUser has it, or datapipeline:{op} alone)"
)
#: The checks that call the endpoint (``_dependent``).
DEPENDENT = (
    "ReportTaskProgress",
    "SetTaskStatus",
    "ReportTaskRunnerHeartbeat",
    "PollForTask",
    "worker groups",
)
LOCAL_KEYS = (
    "dp-runner local takes any keys: "
    "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
)


@dataclass(frozen=True, slots=True)
class Target:
    """What the doctor looks at: the runner's settings, as the cli read them."""

    region: str | None
    endpoint_url: str | None
    worker_groups: Sequence[str]
    work_dir: Path
    probe_poll: bool


def checks(
    target: Target, log: structlog.typing.FilteringBoundLogger
) -> Iterator[Check]:
    """Every check, in order, each yielded as soon as it is done, and each whatever
    the ones before it found (none can end the doctor early). STS and the endpoint
    are asked at once: each may take its whole timeout (4 s)."""
    local = on_loopback(target.endpoint_url)
    with ThreadPoolExecutor(2, thread_name_prefix="doctor") as pool:
        credentials = pool.submit(
            guarded, "credentials", lambda: _credentials(target.region, local=local)
        )
        try:
            client = _client(target, log)
        except ConfigError as exc:
            yield credentials.result()
            yield Check("region", "FAIL", str(exc), "set --region or AWS_REGION")
            yield from (
                Check(name, "skip", "not probed: no region") for name in DEPENDENT
            )
        else:
            reached: list[identity.Reach] = []
            endpoint = pool.submit(
                guarded, "endpoint", lambda: _endpoint(client.endpoint_url, reached)
            )
            yield credentials.result()
            yield Check("region", "ok", client.region)
            yield endpoint.result()
            yield guarded("clock", lambda: _clock(reached))
            yield from _calling_the_endpoint(client, target, endpoint.result())
    yield guarded("IMDS", _metadata)
    yield guarded("work dir", lambda: _work_dir(target.work_dir))


def _calling_the_endpoint(
    client: Client, target: Target, endpoint: Check
) -> Iterator[Check]:
    """The probes and the worker groups; under one short deadline once the
    endpoint check has failed."""
    dependent = _dependent(client, target)
    if endpoint.verdict == "FAIL":
        yield from within(DEPENDENT_DEADLINE_S, dependent, "the endpoint check failed")
    else:
        yield from (guarded(name, check) for name, check in dependent)


def on_loopback(endpoint_url: str | None) -> bool:
    """Whether the endpoint is on this host, as ``dp-runner local`` is."""
    host = urlsplit(endpoint_url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client(target: Target, log: structlog.typing.FilteringBoundLogger) -> Client:
    return Client(
        region=target.region,
        endpoint_url=target.endpoint_url,
        stop=Wakeable(),
        abort=Wakeable(),
        log=log,
    )


def _dependent(client: Client, target: Target) -> list[Named]:
    """The checks that call the endpoint, in the order of ``DEPENDENT``."""
    groups = target.worker_groups
    return [
        *_permissions(client, target),
        ("worker groups", lambda: worker_groups(client, groups)),
    ]


def _credentials(region: str | None, *, local: bool) -> Check:
    try:
        arn = identity.caller_identity(region)
    except ConfigError as exc:
        fix = (
            "attach an instance role, or "
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
        return Check("credentials", "FAIL", str(exc), LOCAL_KEYS if local else fix)
    except TransientServiceError as exc:
        fix = "STS must be reachable (AWS_ENDPOINT_URL_STS names a VPC endpoint)"
        expected = (
            "an endpoint on loopback, as dp-runner local is: it serves no STS, "
            "and takes any keys"
            if local
            else ""
        )
        return Check("credentials", "FAIL", said(exc), fix, expected)
    except ServiceError as exc:
        return Check("credentials", "FAIL", said(exc), _fix_for(exc, "sts"))
    return Check("credentials", "ok", arn)


def _endpoint(url: str, reached: list[identity.Reach]) -> Check:
    """One GET of the endpoint; what it answered goes into ``reached``."""
    proxy = identity.proxy_for(url)
    route = f"through the proxy {proxy}" if proxy else "direct"
    try:
        reached.append(identity.reach(url))
    except OSError as exc:
        return Check(
            "endpoint",
            "FAIL",
            f"{url} ({route}): cannot connect: {exc}",
            "check the network, HTTPS_PROXY/NO_PROXY, or endpoint_url",
        )
    return Check(
        "endpoint",
        "ok",
        f"{url} ({route}) answered HTTP {reached[0].status} "
        f"in {reached[0].elapsed_s * 1000:.0f} ms",
    )


def _clock(reached: list[identity.Reach]) -> Check:
    skew = reached[0].skew_s if reached else None
    if not reached:
        return Check("clock", "skip", "not compared: the endpoint did not answer")
    if skew is None:
        return Check("clock", "skip", "the endpoint sent no Date header")
    if abs(skew) > SKEW_FAIL_S:
        return Check(
            "clock",
            "FAIL",
            f"{skew:+.0f} s off the endpoint's clock",
            "sync the clock (chrony, systemd-timesyncd): SigV4 allows 5 min",
        )
    if abs(skew) > SKEW_WARN_S:
        return Check(
            "clock",
            "warn",
            f"{skew:+.0f} s off the endpoint's clock",
            "sync the clock (chrony, systemd-timesyncd)",
        )
    return Check(
        "clock", "ok", f"within {max(1, round(abs(skew)))} s of the endpoint's"
    )


def _permissions(client: Client, target: Target) -> list[Named]:
    fake_task = f"doctor-{uuid.uuid4().hex}"
    group = next(iter(target.worker_groups), f"doctor-{uuid.uuid4().hex[:12]}")
    probes: list[tuple[str, dict[str, object], bool]] = [
        ("ReportTaskProgress", {"taskId": fake_task}, True),
        (
            "SetTaskStatus",
            {"taskId": fake_task, "taskStatus": "FAILED", "errorId": "DoctorProbe"},
            True,
        ),
        (
            "ReportTaskRunnerHeartbeat",
            {"taskrunnerId": f"doctor-{uuid.uuid4().hex}", "workerGroup": group},
            False,
        ),
    ]
    named: list[Named] = [
        (operation, _probing(client, operation, request, expects_not_found))
        for operation, request, expects_not_found in probes
    ]
    return [*named, ("PollForTask", lambda: _poll(client, probe=target.probe_poll))]


def _probing(
    client: Client, operation: str, request: dict[str, object], expects: bool
) -> Callable[[], Check]:
    return lambda: _probe(_calling(client, operation, request), operation, expects)


def _poll(client: Client, *, probe: bool) -> Check:
    if not probe:
        return Check(
            "PollForTask",
            "skip",
            "not probed: --probe-poll tries it "
            "(on a worker group of its own; up to 90 s)",
        )
    random_group = f"doctor-{uuid.uuid4().hex[:12]}"
    return _probe(
        lambda: client.poll_for_task(random_group, "dp-runner-doctor"),
        "PollForTask",
        expects_not_found=False,
    )


def _calling(
    client: Client, operation: str, request: dict[str, object]
) -> Callable[[], object]:
    return lambda: client.call(operation, request, ONCE)


def _probe(
    call: Callable[[], object], operation: str, expects_not_found: bool
) -> Check:
    try:
        call()
    except TaskNotFoundError:
        if expects_not_found:
            return Check(operation, "ok", "allowed (a made-up task id: TaskNotFound)")
        return Check(operation, "ok", "allowed")
    except ServiceError as exc:
        return Check(operation, "FAIL", said(exc), _fix_for(exc, operation))
    except RunnerError as exc:
        return Check(operation, "FAIL", str(exc))
    return Check(operation, "ok", "allowed")


def _metadata() -> Check:
    if imds.disabled(os.environ):
        return Check(
            "IMDS",
            "skip",
            "AWS_EC2_METADATA_DISABLED is set: "
            "no instanceIdentity is sent with PollForTask",
        )
    metadata = imds.Metadata()
    try:
        found = metadata.identity()
    except imds.MetadataError as exc:
        return Check(
            "IMDS",
            "warn",
            f"unreachable ({exc}): no instanceIdentity",
            "off EC2 this is expected; in a container on EC2, set the "
            "instance's HttpPutResponseHopLimit to 2",
        )
    try:
        document = json.loads(found.document)
        where = f"{document.get('instanceId')} in {document.get('availabilityZone')}"
    except ValueError:
        where = "a document that is not JSON"
    return Check("IMDS", "ok", f"{where}; instanceIdentity is sent with PollForTask")


def _work_dir(path: Path) -> Check:
    probe = path if path.is_dir() else next(p for p in path.parents if p.is_dir())
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".dp-runner-doctor-"):
            pass
    except OSError as exc:
        fix = "make it writable by the runner's user, or set work_dir"
        return Check("work dir", "FAIL", f"{probe}: cannot write: {exc.strerror}", fix)
    if probe != path:
        return Check("work dir", "ok", f"{path} does not exist; {probe} is writable")
    return Check("work dir", "ok", f"{path} is writable")


def _fix_for(exc: ServiceError, operation: str) -> str:
    if isinstance(exc, TransientServiceError):
        return "the service could not be reached: check the endpoint check above"
    if exc.code in ("AccessDenied", "AccessDeniedException"):
        return POLICY_FIX.format(op=operation)
    return "check the credentials (and the clock: a skew reads as a bad signature)"
