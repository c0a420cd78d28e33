"""The S3 side of the shell activities: scripts, staging, output delivery, Exists.

Owns: reading a task's S3 fields into ``S3Fields`` (``scriptUri``, ``stage``,
``input``/``output`` S3DataNodes, ``stdout``/``stderr``), and the transfers that the
activities put in their plans:

    fetch_script       before the process: scriptUri -> the attempt's work folder
    stage_in           before the process: INPUTn folders filled, OUTPUTn made
    stage_out          after a successful process: OUTPUTn folders -> S3
    deliver_output     after the process: StdOutput/StdError -> stdout/stderr
    node_exists        the Exists precondition's check
    cleanup            the staging folders go away (the execution calls it)

``check_delivery`` refuses a local ``stdout``/``stderr`` path under ``run_as``: the
runner (root) would write a file the task chose, where the task's user may not.

Must not: call the Data Pipeline API, start processes or import boto3. Transfers and
their errors belong to ``aws/s3.py``; when each step runs, and what a stop does to it,
belong to ``task/execution.py``. Every transfer takes the attempt's ``stop`` event,
which ends a retry backoff at once.

Why this way: the fields are read first and pure, so a bad definition fails the
attempt before a byte moves; each transfer is a small function a plan step wraps
(Java runner: ``output/staging/..._input<N>`` folders, removed after the task).

The task wrote its staging folders, and under ``run_as`` another task of the same
user may still be writing them: before the runner reads them (``stage_out``) or
removes them (``cleanup``), ``takeback.take_back`` makes each folder the runner's, 0700,
*before* listing it, so that what it lists cannot change after, and removes what
is neither a folder nor a file of the folders' owner: a symlink is never followed
(design.md §3), and a hard link to someone else's file is not uploaded.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from runner.activities.takeback import take_back
from runner.attempt import AttemptPaths
from runner.aws.s3 import S3
from runner.aws.s3uri import parse_s3_uri, relative_key_path
from runner.errors import ActivityError, StagingError
from runner.runas import RunAs
from runner.taskmodel import PipelineObject, Ref, Task

S3_DATA_NODE = "S3DataNode"
_DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class DataNode:
    """An S3DataNode as staging reads it: exactly one of ``file_path`` and
    ``directory_path`` (s3:// URIs); ``sse`` unless ``s3EncryptionType`` is NONE."""

    id: str
    type: str
    file_path: str | None
    directory_path: str | None
    sse: bool = True

    @property
    def uri(self) -> str:
        """The file's URI, or the folder's URI ending in ``/``."""
        if self.file_path is not None:
            return self.file_path
        return (self.directory_path or "").rstrip("/") + "/"


@dataclass(frozen=True, slots=True)
class S3Fields:
    """The S3 side of one task. ``stdout_uri``/``stderr_uri`` are s3:// URIs or
    absolute local paths; ``inputs``/``outputs`` are set only when ``stage`` is."""

    script_uri: str | None = None
    inputs: tuple[DataNode, ...] = ()
    outputs: tuple[DataNode, ...] = ()
    stage: bool = False
    stdout_uri: str | None = None
    stderr_uri: str | None = None


def read(task: Task) -> S3Fields:
    """Read the task's S3 fields. Raises ``ActivityError`` (``InvalidField``,
    ``MissingField``, ``UnsupportedStaging``, ``S3InvalidUri``) for a bad shape."""
    script_uri = _s3_field(task, "scriptUri")  # its scriptArgument is shell's
    stage = _bool_field(task, "stage")
    inputs: tuple[DataNode, ...] = ()
    outputs: tuple[DataNode, ...] = ()
    if stage:
        inputs = tuple(_data_node(task, v, "input") for v in task.get_all("input"))
        outputs = tuple(_data_node(task, v, "output") for v in task.get_all("output"))
    for node in outputs:
        if node.directory_path is None:
            raise ActivityError(
                "MissingField",
                f"output {node.id!r}: staging an output needs 'directoryPath'",
            )
    return S3Fields(
        script_uri=script_uri,
        inputs=inputs,
        outputs=outputs,
        stage=stage,
        stdout_uri=_s3_field(task, "stdout", local_ok=True),
        stderr_uri=_s3_field(task, "stderr", local_ok=True),
    )


def staging_env(fields: S3Fields, staging_root: Path) -> dict[str, str]:
    """The ``INPUTn_STAGING_DIR``/``OUTPUTn_STAGING_DIR`` variables (``{}`` when the
    task does not stage). Pure: ``stage_in`` makes the folders they name."""
    if not fields.stage:
        return {}
    env = {
        f"INPUT{n}_STAGING_DIR": str(staging_root / f"input{n}")
        for n in range(1, len(fields.inputs) + 1)
    }
    env.update(
        (f"OUTPUT{n}_STAGING_DIR", str(staging_root / f"output{n}"))
        for n in range(1, len(fields.outputs) + 1)
    )
    return env


def stage_in(
    fields: S3Fields, s3: S3, staging_root: Path, stop: threading.Event
) -> None:
    """Download input ``n`` into ``staging_root/input<n>`` and create empty
    ``output<n>`` folders (``staging_env`` names them). Raises ``StagingError``."""
    for n, node in enumerate(fields.inputs, start=1):
        folder = _make_dir(staging_root / f"input{n}")
        if node.file_path is not None:
            dest = folder / _key_name(node.file_path)
            s3.download_file(node.file_path, dest, stop=stop)
        else:
            s3.download_prefix(node.uri, folder, stop=stop)
    for n, _ in enumerate(fields.outputs, start=1):
        _make_dir(staging_root / f"output{n}")


def script_path(script_uri: str, workdir: Path) -> Path:
    """Where ``fetch_script`` puts ``script_uri``: its name, in ``workdir``."""
    return workdir / _key_name(script_uri)


def fetch_script(script_uri: str, s3: S3, path: Path, stop: threading.Event) -> None:
    """Download ``script_uri`` to ``path`` (mode 0700). Raises ``StagingError``."""
    s3.download_file(script_uri, path, stop=stop)
    try:
        path.chmod(_DIR_MODE)
    except OSError as exc:
        raise StagingError("StagingIOError", f"{script_uri}: {exc}") from exc


def stage_out(
    fields: S3Fields, s3: S3, staging_root: Path, stop: threading.Event
) -> None:
    """After a successful run: upload ``output<n>`` to output ``n``'s
    ``directoryPath``, encrypted unless the node says NONE; the staging folders
    are taken back first (``_take_back``: no symlink is followed). Raises
    ``StagingError``."""
    try:
        take_back(staging_root)
    except OSError as exc:
        raise StagingError("StagingIOError", f"{staging_root}: {exc}") from exc
    for n, node in enumerate(fields.outputs, start=1):
        s3.upload_dir(staging_root / f"output{n}", node.uri, sse=node.sse, stop=stop)


def deliver_output(
    fields: S3Fields, s3: S3, paths: AttemptPaths, stop: threading.Event
) -> None:
    """Send StdOutput/StdError where ``stdout``/``stderr`` say: an s3:// URI gets an
    upload, a local path a copy (parents created). Raises ``StagingError``."""
    pairs = ((fields.stdout_uri, paths.stdout), (fields.stderr_uri, paths.stderr))
    for target, path in pairs:
        if target is None:
            continue
        if target.startswith("s3://"):
            s3.upload_file(path, target, stop=stop)
            continue
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        except OSError as exc:
            raise StagingError("StagingIOError", f"copy to {target}: {exc}") from exc


def check_delivery(fields: S3Fields, run_as: RunAs | None) -> None:
    """Under ``run_as``, refuse a local ``stdout``/``stderr`` path with
    ``ActivityError(InvalidField)``: the runner would write, as root, a file the
    task chose. Without ``run_as``, nothing."""
    if run_as is None:
        return
    for key, target in (("stdout", fields.stdout_uri), ("stderr", fields.stderr_uri)):
        if target is not None and not target.startswith("s3://"):
            raise ActivityError(
                "InvalidField",
                f"{key!r} is a local path; under run_as the runner copies output "
                "only to an s3:// URI (write local files from the command)",
            )


def cleanup(staging_root: Path) -> None:
    """Remove ``staging_root`` and everything in it, even folders the task made
    unreadable; never follows a symlink, never raises."""
    with contextlib.suppress(OSError):
        take_back(staging_root)
    shutil.rmtree(staging_root, ignore_errors=True)


def guarded_node(task: Task) -> DataNode:
    """The S3DataNode the ``Exists`` precondition checks: the one whose
    ``precondition`` names this precondition, else the task's only S3DataNode.
    Raises ``ActivityError(MissingField)`` when there is none."""
    own_ids = {obj.id for obj in task.lineage()}
    nodes = [
        o for o in task.objects.values() if task.get_str("type", o) == S3_DATA_NODE
    ]
    guarding = [
        o
        for o in nodes
        if any(isinstance(v, Ref) and v.id in own_ids for v in o.values("precondition"))
    ]
    chosen = guarding or (nodes if len(nodes) == 1 else [])
    if not chosen:
        raise ActivityError(
            "MissingField",
            "Exists: cannot tell which S3DataNode this precondition checks",
        )
    return _s3_data_node(task, chosen[0], "node")


def _s3_field(
    task: Task, key: str, start: PipelineObject | None = None, *, local_ok: bool = False
) -> str | None:
    """A stripped s3:// URI field (or, with ``local_ok``, an absolute local path)."""
    value = (task.get_str(key, start) or "").strip()
    if not value:
        return None
    if local_ok and not value.startswith("s3://"):
        if not Path(value).is_absolute() or "\0" in value:
            raise ActivityError(
                "InvalidField", f"{key!r} must be an s3:// URI or an absolute path"
            )
        return value
    parse_s3_uri(value)
    return value


def _bool_field(task: Task, key: str) -> bool:
    value = (task.get_str(key) or "false").strip().lower()
    if value not in ("true", "false"):
        raise ActivityError("InvalidField", f"{key!r} must be true or false")
    return value == "true"


def _data_node(task: Task, value: object, role: str) -> DataNode:
    if not isinstance(value, Ref):
        raise ActivityError("InvalidField", f"{role!r} must reference a data node")
    obj = task.objects.get(value.id)
    if obj is None:
        raise ActivityError("MissingField", f"{role} {value.id!r} is not in the task")
    return _s3_data_node(task, obj, role)


def _s3_data_node(task: Task, obj: PipelineObject, role: str) -> DataNode:
    node_type = task.get_str("type", obj) or ""
    if node_type != S3_DATA_NODE:
        raise ActivityError(
            "UnsupportedStaging",
            f"{role} {obj.id!r} is a {node_type or 'node without type'}; "
            "staging works only with S3DataNode",
        )
    file_path = _s3_field(task, "filePath", obj)
    directory_path = _s3_field(task, "directoryPath", obj)
    if (file_path is None) == (directory_path is None):
        raise ActivityError(
            "InvalidField",
            f"{role} {obj.id!r} needs exactly one of 'filePath' and 'directoryPath'",
        )
    encryption = (task.get_str("s3EncryptionType", obj) or "").strip().upper()
    return DataNode(
        id=obj.id,
        type=node_type,
        file_path=file_path,
        directory_path=directory_path,
        sse=encryption != "NONE",
    )


def _key_name(uri: str) -> str:
    """The last segment of an object's key, refused when it is not a safe name."""
    bucket, key = parse_s3_uri(uri)
    name = relative_key_path(bucket, key, key[: key.rfind("/") + 1])
    if name is None:
        raise ActivityError("InvalidField", f"{uri!r} names a folder, not an object")
    return name.name


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StagingError("StagingIOError", f"cannot create {path}: {exc}") from exc
    return path
