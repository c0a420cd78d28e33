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
never retried: a diagnosis says what it met.

Why this order: each check explains the ones after it (no credentials explains
every refusal; an unreachable endpoint every permission it could not probe).
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.aws import identity, imds
from runner.aws.client import Client
from runner.aws.retries import RetryPolicy
from runner.errors import (
    ConfigError,
    RejectedRequestError,
    RunnerError,
    ServiceError,
    TaskNotFoundError,
    TransientServiceError,
)

#: One try, no backoff: what the endpoint answers now.
ONCE = RetryPolicy(1, 30.0, 0.0, 0.0)
#: The worker-group check looks at this many pipelines, one call a second.
PIPELINES_LOOKED_AT = 25
CALL_INTERVAL_S = 1.0
#: A clock this far from the endpoint's is refused by SigV4 (5 minutes), or near.
SKEW_FAIL_S, SKEW_WARN_S = 240.0, 30.0
POLICY_FIX = (
    "allow it to the runner's role (the managed policy "
    "AWSDataPipeline_PowerUser has it, or datapipeline:{op} alone)"
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: str  # ok, warn, skip, FAIL
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"


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
    """Run the checks one after the other; each is yielded as soon as it is done."""
    yield _credentials(target.region)
    try:
        client = Client(
            region=target.region,
            endpoint_url=target.endpoint_url,
            stop=threading.Event(),
            abort=threading.Event(),
            log=log,
        )
    except ConfigError as exc:
        yield Check("region", "FAIL", str(exc), "set --region or AWS_REGION")
        return
    yield Check("region", "ok", client.region)
    yield from _endpoint(client.endpoint_url)
    yield from _permissions(client, target)
    yield _worker_groups(client, target.worker_groups)
    yield _metadata()
    yield _work_dir(target.work_dir)


def _credentials(region: str | None) -> Check:
    try:
        arn = identity.caller_identity(region)
    except ConfigError as exc:
        return Check(
            "credentials",
            "FAIL",
            str(exc),
            "attach an instance role, or "
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    except TransientServiceError as exc:
        fix = "STS must be reachable (AWS_ENDPOINT_URL_STS names a VPC endpoint)"
        return Check("credentials", "FAIL", _said(exc), fix)
    except ServiceError as exc:
        return Check("credentials", "FAIL", _said(exc), _fix_for(exc, "sts"))
    return Check("credentials", "ok", arn)


def _endpoint(url: str) -> Iterator[Check]:
    proxy = identity.proxy_for(url)
    route = f"through the proxy {proxy}" if proxy else "direct"
    try:
        reached = identity.reach(url)
    except OSError as exc:
        yield Check(
            "endpoint",
            "FAIL",
            f"{url} ({route}): cannot connect: {exc}",
            "check the network, HTTPS_PROXY/NO_PROXY, or endpoint_url",
        )
        return
    yield Check(
        "endpoint",
        "ok",
        f"{url} ({route}) answered HTTP {reached.status} "
        f"in {reached.elapsed_s * 1000:.0f} ms",
    )
    skew = reached.skew_s
    if skew is None:
        yield Check("clock", "skip", "the endpoint sent no Date header")
    elif abs(skew) > SKEW_FAIL_S:
        yield Check(
            "clock",
            "FAIL",
            f"{skew:+.0f} s off the endpoint's clock",
            "sync the clock (chrony, systemd-timesyncd): SigV4 allows 5 min",
        )
    elif abs(skew) > SKEW_WARN_S:
        yield Check(
            "clock",
            "warn",
            f"{skew:+.0f} s off the endpoint's clock",
            "sync the clock (chrony, systemd-timesyncd)",
        )
    else:
        yield Check(
            "clock", "ok", f"within {max(1, round(abs(skew)))} s of the endpoint's"
        )


def _permissions(client: Client, target: Target) -> Iterator[Check]:
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
    for operation, request, expects_not_found in probes:
        yield _probe(_calling(client, operation, request), operation, expects_not_found)
    if not target.probe_poll:
        yield Check(
            "PollForTask",
            "skip",
            "not probed: --probe-poll tries it "
            "(on a worker group of its own; up to 90 s)",
        )
        return
    random_group = f"doctor-{uuid.uuid4().hex[:12]}"
    yield _probe(
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
        return Check(operation, "FAIL", _said(exc), _fix_for(exc, operation))
    except RunnerError as exc:
        return Check(operation, "FAIL", str(exc))
    return Check(operation, "ok", "allowed")


def _worker_groups(client: Client, groups: Sequence[str]) -> Check:
    if not groups:
        return Check("worker groups", "skip", "none configured (worker_groups)")
    try:
        listed = client.call("ListPipelines", {}, ONCE).get("pipelineIdList", [])
    except RejectedRequestError as exc:
        needs = "skipped: needs datapipeline:ListPipelines"
        return Check("worker groups", "skip", f"{needs} ({exc.code})")
    except ServiceError as exc:
        return Check("worker groups", "skip", f"skipped: {_said(exc)}")
    used: set[str] = set()
    pause = threading.Event()
    for n, item in enumerate(listed[:PIPELINES_LOOKED_AT]):
        if n:
            pause.wait(CALL_INTERVAL_S)  # AWS allows ListPipelines' kin 1 call/s
        try:
            answer = client.call(
                "GetPipelineDefinition", {"pipelineId": item["id"]}, ONCE
            )
        except ServiceError as exc:
            needs = "skipped: needs datapipeline:GetPipelineDefinition"
            return Check("worker groups", "skip", f"{needs} ({exc.code})")
        used |= _worker_groups_of(answer.get("pipelineObjects", []))
    return _spelling(groups, used, min(len(listed), PIPELINES_LOOKED_AT))


def _worker_groups_of(objects: list[dict[str, object]]) -> set[str]:
    found = set()
    for obj in objects:
        fields = obj.get("fields", [])
        for field in fields if isinstance(fields, list) else []:
            if field.get("key") == "workerGroup" and field.get("stringValue"):
                found.add(str(field["stringValue"]))
    return found


def _spelling(groups: Sequence[str], used: set[str], looked_at: int) -> Check:
    missing = [g for g in groups if g not in used]
    if not missing:
        return Check(
            "worker groups",
            "ok",
            f"{', '.join(groups)}: named by pipelines of the {looked_at} looked at",
        )
    notes, typo = [], False
    for group in missing:
        close = difflib.get_close_matches(group, sorted(used), n=1, cutoff=0.6)
        if close:
            typo = True
            notes.append(f"{group!r}: no pipeline names it; did you mean {close[0]!r}?")
        else:
            notes.append(f"{group!r}: none of the {looked_at} pipelines names it")
    fix = "worker_groups must be spelled as the activities' workerGroup"
    return Check("worker groups", "FAIL" if typo else "warn", "; ".join(notes), fix)


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


def _said(exc: ServiceError) -> str:
    return f"{exc.code}: {exc.message or '(the service gave no message)'}"


def _fix_for(exc: ServiceError, operation: str) -> str:
    if isinstance(exc, TransientServiceError):
        return "the service could not be reached: check the endpoint check above"
    if exc.code in ("AccessDenied", "AccessDeniedException"):
        return POLICY_FIX.format(op=operation)
    return "check the credentials (and the clock: a skew reads as a bad signature)"
