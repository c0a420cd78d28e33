"""ShellCommandActivity and ShellCommandPrecondition: a shell script and its arguments.

Owns: reading ``command`` / ``scriptUri`` / ``scriptArgument`` (DG:
dp-object-shellcommandactivity, dp-object-shellcommandprecondition), writing the
command to ``command.sh`` in the attempt's work folder, the argv that runs it, and
the plan around it: fetch the script, stage in, the process, stage out, deliver
stdout/stderr (the transfers are ``staging``'s).

Must not: start the process or run a transfer. The execution runs the plan's steps
under the attempt's stop flag; the supervisor runs the process in the work folder.

Why this way: like the Java runner, ``command`` is written to a script file and run
from there, so a multi-line command with quotes needs no escaping. ``scriptArgument``
values travel as argv (``$1..$n``) and are never pasted into the script text, so an
argument such as ``$(rm -rf ~)`` stays a string. The interpreter is bash when the host
has it (pipeline scripts are written for Amazon Linux, where ``sh`` is bash), else
``/bin/sh``.

``scriptUri`` (an S3 script): a ``fetch_script`` transfer downloads it before the
process starts, and the process runs it directly when it starts with ``#!``, else
with the shell; ``scriptArgument`` values follow as ``$1..$n``. The Developer Guide
says that combination "causes an error", but AWS runs it: its HadoopTerasort sample
passes its script an argument that way, and the script reads ``$1``. Whether the
URI is a valid S3 URI is checked by ``staging.read``.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runner.activities import staging
from runner.activities.context import ActivityContext, activity_env
from runner.activities.periods import attempt_timeout_s
from runner.activities.plan import Plan, Process, Transfer
from runner.errors import ActivityError, SpawnError, StagingError
from runner.taskmodel import Ref, Task

SCRIPT_NAME = "command.sh"
SCRIPT_MODE = 0o700


def shell_interpreter() -> str:
    """bash from PATH when there is one, else ``/bin/sh``."""
    return _find_shell(os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=4)
def _find_shell(path: str) -> str:
    # Looked up once per PATH, not once per task: a search stats every directory,
    # about 0.2 M instructions a task, an eighth of the margin of the per-task
    # budget (docs/development.md, issue 23's callgrind figure).
    return shutil.which("bash", path=path) or "/bin/sh"


@dataclass(frozen=True, slots=True)
class ShellSource:
    """What a shell activity runs: inline ``command`` or a ``script_uri``, and args."""

    command: str | None
    script_uri: str | None
    arguments: tuple[str, ...]


def _script_arguments(task: Task, type_name: str) -> tuple[str, ...]:
    arguments: list[str] = []
    for index, value in enumerate(task.get_all("scriptArgument"), start=1):
        if isinstance(value, Ref):
            raise ActivityError(
                "InvalidField",
                f"{type_name}: scriptArgument #{index} must be a string, "
                f"not a reference to {value.id!r}",
            )
        if "\0" in value:
            raise ActivityError(
                "InvalidField", f"{type_name}: scriptArgument #{index} contains NUL"
            )
        arguments.append(value)
    return tuple(arguments)


def read_source(task: Task, type_name: str) -> ShellSource:
    """Read and check the script fields; raises ``ActivityError`` (``MissingField``,
    ``InvalidField``) when the definition is not runnable as the DG describes it."""
    command = task.get_str("command")
    script_uri = task.get_str("scriptUri")
    command = command if command and command.strip() else None
    script_uri = script_uri if script_uri and script_uri.strip() else None
    arguments = _script_arguments(task, type_name)
    if command is None and script_uri is None:
        raise ActivityError(
            "MissingField", f"{type_name} needs 'command' or 'scriptUri'"
        )
    if command is not None and script_uri is not None:
        raise ActivityError(
            "InvalidField", f"{type_name} takes 'command' or 'scriptUri', not both"
        )
    if command is not None and "\0" in command:
        raise ActivityError("InvalidField", f"{type_name}: 'command' contains NUL")
    return ShellSource(command=command, script_uri=script_uri, arguments=arguments)


def write_script(workdir: Path, text: str) -> Path:
    """Write ``text`` to ``workdir/command.sh`` with mode 0700 and return its path.

    Does not follow a symlink planted at that path. Raises ``SpawnError`` when the
    file cannot be written (full disk, missing folder).
    """
    path = workdir / SCRIPT_NAME
    if not text.endswith("\n"):
        text += "\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, SCRIPT_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            os.fchmod(file.fileno(), SCRIPT_MODE)  # O_CREAT's mode is cut by the umask
            file.write(text)
    except OSError as exc:
        raise SpawnError(f"cannot write the script {path}: {exc}") from exc
    return path


def script_argv(path: Path) -> list[str]:
    """The argv that runs a fetched script: ``[script]`` when it starts with ``#!``,
    else ``[bash-or-sh, script]``. Raises ``StagingError`` when it cannot be read."""
    try:
        with path.open("rb") as file:
            shebang = file.read(2) == b"#!"
    except OSError as exc:
        raise StagingError("StagingIOError", f"{path}: {exc}") from exc
    return [str(path)] if shebang else [shell_interpreter(), str(path)]


class ShellCommandActivity:
    """Runs ``command`` with bash (or sh), ``scriptArgument`` values as ``$1..$n``;
    or a ``scriptUri`` fetched first. ``stage: true`` stages S3DataNode inputs in
    and outputs out (after a success); ``stdout``/``stderr`` are delivered after.

    Exit 0 is FINISHED, anything else FAILED. ``attemptTimeout`` becomes the plan's
    ``timeout_s``. Stateless and thread-safe.
    """

    type_name = "ShellCommandActivity"
    false_on_failure = False

    def plan(self, task: Task, ctx: ActivityContext) -> Plan:
        source = read_source(task, self.type_name)
        fields = staging.read(task)
        staging.check_delivery(fields, ctx.run_as)
        timeout_s = attempt_timeout_s(task)
        paths, s3, stop = ctx.paths, ctx.s3, ctx.stop
        env = {**activity_env(task, ctx), **staging.staging_env(fields, paths.staging)}
        before: list[Transfer] = []
        if source.script_uri is not None:
            uri, path = (
                source.script_uri,
                staging.script_path(source.script_uri, paths.workdir),
            )
            before.append(
                Transfer(
                    "fetch_script", lambda: staging.fetch_script(uri, s3, path, stop)
                )
            )
            arguments = source.arguments
            process = Process(argv=lambda: [*script_argv(path), *arguments], env=env)
        else:
            script = write_script(paths.workdir, source.command or "")
            argv = (shell_interpreter(), str(script), *source.arguments)
            process = Process(argv=lambda: argv, env=env)
        if fields.stage:
            before.append(
                Transfer(
                    "stage_in",
                    lambda: staging.stage_in(fields, s3, paths.staging, stop),
                )
            )
        after = (
            (
                Transfer(
                    "stage_out",
                    lambda: staging.stage_out(fields, s3, paths.staging, stop),
                ),
            )
            if fields.stage and fields.outputs
            else ()
        )
        deliver = (
            (
                Transfer(
                    "deliver_output",
                    lambda: staging.deliver_output(fields, s3, paths, stop),
                ),
            )
            if fields.stdout_uri or fields.stderr_uri
            else ()
        )
        return Plan(
            main=process,
            before=tuple(before),
            after_success=after,
            deliver=deliver,
            timeout_s=timeout_s,
            precondition=self.false_on_failure,
        )


class ShellCommandPrecondition(ShellCommandActivity):
    """Runs like ``ShellCommandActivity``; a non-zero exit means FALSE (not yet met),
    after which the service retries after ``retryDelay``."""

    type_name = "ShellCommandPrecondition"
    false_on_failure = True
