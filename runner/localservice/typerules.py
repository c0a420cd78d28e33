"""What each object's type asks of it: the rules behind most validation messages.

Owns: the checks that follow from `catalog` (an unknown type is an error; a missing
required field or required group is an error; a field the page forbids is an
error; a field its type does not know is a warning naming the closest known one,
unless it is a user field), the well-formedness of S3 locations (`directoryPath`,
`filePath`, `scriptUri`: errors; `pipelineLogUri`: a warning), the Schedule's
either-or fields, and the per-object limits of the limits page. Each rule names its
Developer Guide page (`DG <page>`).

Must not: evaluate expressions itself or report through anything but the lists it
is given (`validation` orchestrates and supplies evaluated values).

Why: these are the answers AWS gives to a definition before it runs anything; the
local service gives them word for word the same way, so a definition that passes
here is one AWS would take. Required fields count when inherited (from a `parent`
or from `Default`, DG dp-writing-pipeline-definition), as AWS resolves them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from runner.localservice.catalog import ALL_FIELDS, TYPES
from runner.localservice.definition import Definition
from runner.localservice.objecttype import ObjectType, is_user_field

# DG dp-limits, "Account Limits" (none of these three is adjustable; the objects
# per pipeline limit is, and is not enforced here).
MAX_FIELDS_PER_OBJECT = 50
MAX_OBJECT_BYTES = 15_360
# Fields holding S3 locations. DG dp-object-s3datanode: directoryPath and filePath
# are "s3://my-bucket/my-key..." URIs; dp-object-shellcommandactivity (and
# Hive, Pig, Sql, ShellScriptConfig): scriptUri is "an Amazon S3 URI";
# pipelineLogUri is "The S3 URI (such as 's3://BucketName/Key/')" on every
# runnable object, but AWS only warns about it (issue 13).
S3_ERROR_KEYS = frozenset({"directoryPath", "filePath", "scriptUri"})
S3_WARNING_KEYS = frozenset({"pipelineLogUri"})
# s3://bucket[/key]: the bucket has no slash or blank (DG examples write
# `s3://myBucket/...` and `s3://bucket_name`, so case and `_` are accepted).
_S3_URI = re.compile(r"s3://[^/\s]+(/.*)?", re.DOTALL)


def check_type(defn: Definition, obj_id: str, errors: list[str]) -> ObjectType | None:
    """The object's type (own or inherited), or None after reporting why not."""
    kind = defn.type_of(obj_id)
    if not kind:
        if obj_id != "Default" and obj_id not in parents(defn):
            # DG dp-writing-pipeline-definition: every object needs `type`; one
            # that only serves as another's `parent` is a template and may not.
            errors.append("Missing required field: 'type'")
        return None
    found = TYPES.get(kind)
    if found is None:
        # DG dp-pipeline-objects: the types are those of the object reference.
        errors.append(f"Unknown object type '{kind}'{_closest(kind, TYPES)}")
    return found


def check_fields_of_type(
    defn: Definition,
    obj_id: str,
    found: ObjectType | None,
    errors: list[str],
    warnings: list[str],
) -> None:
    """Required fields and groups, forbidden and unknown fields (DG: the page of
    the type, named in `catalog`)."""
    own = [key for key, _, _ in defn.objects[obj_id][1]]
    if found is None:
        _warn_unknown(own, ALL_FIELDS, "", warnings)
        return
    kind = defn.type_of(obj_id)
    errors.extend(
        f"Missing required field: '{key}'"
        for key in found.required
        if not defn.lookup(obj_id, key)
    )
    errors.extend(
        f"{kind} requires one of {_either(group)}"
        for group in found.groups
        if not any(defn.lookup(obj_id, key) for key in group)
    )
    errors.extend(
        f"Field '{key}' is not allowed on {kind}"
        for key in dict.fromkeys(own)
        if key in found.forbidden
    )
    _warn_unknown(own, found.fields, kind, warnings)


def check_default(defn: Definition, warnings: list[str]) -> None:
    """Default's fields are inherited by every type: any known field may be there."""
    _warn_unknown(
        [key for key, _, _ in defn.objects["Default"][1]], ALL_FIELDS, "", warnings
    )


def _warn_unknown(
    keys: list[str], known: frozenset[str], kind: str, warnings: list[str]
) -> None:
    where = f" on {kind}" if kind else ""
    for key in dict.fromkeys(keys):
        if key in known or key.startswith("@") or is_user_field(key):
            continue
        hint = _closest(key, known) or (
            "; a field of your own starts with 'my' and a capital letter or '_' "
            "(DG dp-writing-pipeline-definition)"
        )
        warnings.append(f"Unknown field '{key}'{where}{hint}")


def check_rules_of_type(
    defn: Definition, obj_id: str, errors: list[str], warnings: list[str]
) -> None:
    """The either-or rules the pages state in words."""
    kind = defn.type_of(obj_id)
    first = defn.first
    # DG dp-object-shellcommandactivity: "The scriptArgument can only be used
    # with command; Using it with scriptUri causes an error." Yet AWS's own
    # HadoopTerasort sample uses both, and AWS activates and runs it: a warning.
    if (
        kind == "ShellCommandActivity"
        and first(obj_id, "scriptUri")
        and first(obj_id, "scriptArgument") is not None
    ):
        warnings.append(
            "scriptArgument with scriptUri: the Developer Guide "
            "(dp-object-shellcommandactivity) says it 'can only be used with "
            "command' and 'causes an error' with scriptUri; AWS accepts it (its "
            "HadoopTerasort sample does), and dp-runner passes the values to the "
            "script as $1..$n"
        )
    if kind == "Schedule":
        # DG dp-object-schedule: "use either startDateTime or startAt but not
        # both"; "You can't use occurrences with endDateTime".
        if first(obj_id, "startAt") and first(obj_id, "startDateTime"):
            errors.append("Use either 'startDateTime' or 'startAt', not both")
        if first(obj_id, "occurrences") and first(obj_id, "endDateTime"):
            errors.append("'occurrences' cannot be used with 'endDateTime'")
    if kind == "RedshiftDatabase" and all(
        first(obj_id, key) for key in ("clusterId", "connectionString")
    ):
        # DG dp-object-redshiftdatabase: "You can't specify both".
        errors.append("Specify 'clusterId' or 'connectionString', not both")


def check_limits(defn: Definition, obj_id: str, errors: list[str]) -> None:
    """DG dp-limits: fields per object, UTF-8 bytes per object (names included)."""
    fields = defn.objects[obj_id][1]
    if len(fields) > MAX_FIELDS_PER_OBJECT:
        errors.append(
            f"An object has at most {MAX_FIELDS_PER_OBJECT} fields; this one has "
            f"{len(fields)}"
        )
    size = sum(len(key.encode()) + len(value.encode()) for key, value, _ in fields)
    if size > MAX_OBJECT_BYTES:
        errors.append(
            f"An object holds at most {MAX_OBJECT_BYTES} UTF-8 bytes (field names "
            f"included); this one holds {size}"
        )


def check_location(
    key: str, value: str, errors: list[str], warnings: list[str]
) -> None:
    """An evaluated S3 location field: `s3://bucket[/key]`."""
    if key not in S3_ERROR_KEYS | S3_WARNING_KEYS or _S3_URI.fullmatch(value):
        return
    message = f"Field '{key}': {value!r} is not an s3://bucket/key URI"
    (errors if key in S3_ERROR_KEYS else warnings).append(message)


def parents(defn: Definition) -> frozenset[str]:
    """Ids that some object names as its `parent`."""
    return frozenset(
        value
        for _, fields in defn.objects.values()
        for key, value, is_ref in fields
        if key == "parent" and is_ref
    )


def _either(group: tuple[str, ...]) -> str:
    quoted = [f"'{key}'" for key in group]
    return " or ".join(
        [", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 2 else quoted
    )


def _closest(word: str, known: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""
