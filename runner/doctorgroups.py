"""``dp-runner doctor``'s worker-group check: the groups it would serve, against the
``workerGroup`` fields of the account's pipelines.

Owns: reading up to 25 pipeline definitions (ListPipelines, then one
GetPipelineDefinition a second, AWS's rate for them) and naming, for a group no
pipeline names, the closest one that some pipeline does (a typo is a ``FAIL``;
a group no pipeline names yet is a ``warn``).

Must not: change anything in the account, or fail the doctor when the account
does not allow these reads (a ``skip`` that names the permission).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Sequence

from runner.aws.client import Client
from runner.doctorchecks import ONCE, Check, said
from runner.errors import ConfigError, RejectedRequestError, ServiceError

PIPELINES_LOOKED_AT = 25
CALL_INTERVAL_S = 1.0


def worker_groups(client: Client, groups: Sequence[str]) -> Check:
    """The groups against the workerGroup fields of the account's pipelines (the
    first 25, one GetPipelineDefinition a second); a skip when not allowed."""
    if not groups:
        return Check("worker groups", "skip", "none configured (worker_groups)")
    try:
        listed = client.call("ListPipelines", {}, ONCE).get("pipelineIdList", [])
    except ConfigError as exc:  # no credentials: the credentials check says why
        return Check("worker groups", "skip", f"skipped: {exc}")
    except RejectedRequestError as exc:
        needs = "skipped: needs datapipeline:ListPipelines"
        return Check("worker groups", "skip", f"{needs} ({exc.code})")
    except ServiceError as exc:
        return Check("worker groups", "skip", f"skipped: {said(exc)}")
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
