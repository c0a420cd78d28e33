"""ShellCommandActivity and ShellCommandPrecondition: a shell script and its arguments.

Owns: reading ``command`` / ``scriptUri`` / ``scriptArgument`` (DG:
dp-object-shellcommandactivity, dp-object-shellcommandprecondition), writing the
command to ``command.sh`` in the attempt's work folder, and the argv that runs it.

Must not: start the process, download anything or call AWS. The supervisor runs the
``Command`` in the work folder; the execution layer does every network transfer.

Why this way: like the Java runner, ``command`` is written to a script file and run
from there, so a multi-line command with quotes needs no escaping. ``scriptArgument``
values travel as argv (``$1..$n``) and are never pasted into the script text, so an
argument such as ``$(rm -rf ~)`` stays a string. The interpreter is bash when the host
has it (pipeline scripts are written for Amazon Linux, where ``sh`` is bash), else
``/bin/sh``.

``scriptUri`` (an S3 script): this module only checks the fields and returns a
Command with ``script_uri`` set and ``argv`` empty (``scriptArgument`` is not allowed
with it). ``execution.py`` downloads the script through ``staging.fetch_script`` and
puts the interpreter and the script ahead of ``argv``, so this module stays free of
boto3. Whether the URI is a valid S3 URI is checked by ``staging.plan``.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runner.activities.context import ActivityContext, activity_env
from runner.activities.periods import attempt_timeout_s
from runner.errors import ActivityError, SpawnError
from runner.taskmodel import Command, Ref, Task

SCRIPT_NAME = "command.sh"
SCRIPT_MODE = 0o700


def shell_interpreter() -> str:
    """bash from PATH when there is one, else ``/bin/sh``."""
    return _find_shell(os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=4)
def _find_shell(path: str) -> str:
    # Looked up once per PATH, not once per task: a search stats every directory.
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
    if script_uri is not None and arguments:
        raise ActivityError(
            "InvalidField",
            f"{type_name}: 'scriptArgument' is only allowed with 'command', "
            "not with 'scriptUri'",
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


class ShellCommandActivity:
    """Runs ``command`` with bash (or sh), ``scriptArgument`` values as ``$1..$n``;
    or, for ``scriptUri``, a Command whose ``script_uri`` the execution downloads.

    Exit 0 is FINISHED, anything else FAILED. ``attemptTimeout`` becomes the
    Command's ``timeout_s``. Stateless and thread-safe.
    """

    type_name = "ShellCommandActivity"
    false_on_failure = False

    def prepare(self, task: Task, ctx: ActivityContext) -> Command:
        source = read_source(task, self.type_name)
        timeout_s = attempt_timeout_s(task)
        if source.command is None:  # scriptUri: the execution downloads and runs it
            return Command(
                argv=(),
                env=activity_env(task, ctx),
                timeout_s=timeout_s,
                false_on_failure=self.false_on_failure,
                script_uri=source.script_uri,
            )
        script = write_script(ctx.workdir, source.command)
        return Command(
            argv=(shell_interpreter(), str(script), *source.arguments),
            env=activity_env(task, ctx),
            timeout_s=timeout_s,
            false_on_failure=self.false_on_failure,
        )


class ShellCommandPrecondition(ShellCommandActivity):
    """Runs like ``ShellCommandActivity``; a non-zero exit means FALSE (not yet met),
    after which the service retries after ``retryDelay``."""

    type_name = "ShellCommandPrecondition"
    false_on_failure = True
