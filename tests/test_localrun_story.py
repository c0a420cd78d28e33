"""``run --local`` tells the story (issue "run --local tells the story"): on a real
pseudo-terminal, a failure's reason, every retry, the order of things, each
attempt's output; JSON all through; nothing lost without a word."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.runners import REPO, run_local
from tests.support.terminal import EXAMPLES, Terminal, definition, made_dirs


def shell(obj_id: str, command: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": obj_id,
        "name": obj_id,
        "type": "ShellCommandActivity",
        "command": command,
        **fields,
    }


def test_a_failing_command_says_its_reason_on_the_line(tmp_path: Path) -> None:
    path = definition(
        tmp_path, shell("Import", "sqoop import --table songs", maximumRetries="0")
    )
    code, text = Terminal(["--local", str(path)], tmp_path).finish()
    assert code == 4, text
    # the error first, then the last meaningful stderr line, without the prefix
    block = re.search(
        r"^@Import_\S+\s+attempt 1 FAILED.*: ExitCode:127: .*\n"
        r"    \| command\.sh: line 1: sqoop: command not found$",
        text,
        re.MULTILINE,
    )
    assert block, text
    assert "dp-runner-local-" not in block.group(), text


@pytest.mark.parametrize("max_retries", [1, 2])
def test_every_retry_is_announced(tmp_path: Path, max_retries: int) -> None:
    path = definition(
        tmp_path,
        shell(
            "Flaky",
            "exit 1",
            maximumRetries=str(max_retries),
            retryDelay="2 minutes",
        ),
    )
    code, text = Terminal(["--local", str(path)], tmp_path).finish()
    assert code == 4, text
    retries = re.findall(r"^@Flaky_\S+\s+(retry \d+ of \d+) in 1\.2 s$", text, re.M)
    assert retries == [f"retry {n} of {max_retries}" for n in range(1, max_retries + 1)]
    failures = re.findall(r"^@Flaky_\S+\s+attempt (\d+) FAILED", text, re.M)
    assert failures == [str(n) for n in range(1, max_retries + 2)], text


def test_a_dependent_is_said_to_start_after_its_dependency_finished(
    tmp_path: Path,
) -> None:
    """ "A" depends on "Z": its id sorts first, yet it must not appear to run
    before Z has finished."""
    path = definition(
        tmp_path,
        shell("Z", "echo first"),
        shell("A", "echo second", dependsOn={"ref": "Z"}),
    )
    code, text = Terminal(["--local", str(path)], tmp_path).finish()
    assert code == 0, text
    lines = text.splitlines()

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, (pattern, text)
        return found[0]

    z_finished = index(r"^@Z_\S+\s+FINISHED\s+attempt 1$")
    assert z_finished < index(r"^@A_\S+\s+(?!WAITING_ON_DEPENDENCIES)\S")
    assert z_finished < index(r"^@A_\S+\s+attempt 1 FINISHED")


def test_hello_shows_its_greeting_and_durations(tmp_path: Path) -> None:
    code, text = Terminal(["--local", str(EXAMPLES / "hello.json")], tmp_path).finish()
    assert code == 0, text
    assert re.search(r"^@SayHello_\S+\s+attempt 1 FINISHED in (<1|\d+) s$", text, re.M)
    assert re.search(r"^    > hello, Data Pipeline, from \S+$", text, re.M), text


def test_quiet_hides_the_output(tmp_path: Path) -> None:
    args = ["--local", str(EXAMPLES / "hello.json"), "--quiet"]
    code, text = Terminal(args, tmp_path).finish()
    assert code == 0, text
    assert "hello, Data Pipeline" not in text, text
    assert re.search(r"^@SayHello_\S+\s+attempt 1 FINISHED", text, re.M), text


def test_json_logs_are_json_to_the_last_line(tmp_path: Path) -> None:
    jq = shutil.which("jq")
    assert jq is not None, "jq is needed: apt-get install jq"
    result = run_local(EXAMPLES / "retry-and-depend.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    parsed = subprocess.run(
        [jq, "-c", "."],
        input=result.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, (parsed.stderr, result.stdout[-3000:])
    lines = [json.loads(line) for line in parsed.stdout.splitlines()]
    assert len(lines) == len(result.stdout.splitlines())
    instances = [line for line in lines if line["event"] == "local_run_instance"]
    assert {line["status"] for line in instances} == {"FINISHED"}
    assert lines[-1]["event"] == "local_run_ended"
    assert lines[-1]["finished"] is True


def test_a_mistyped_log_bucket_keeps_and_names_the_work_dir(
    tmp_path: Path, s3_env: dict[str, str], s3_bucket: str
) -> None:
    path = definition(
        tmp_path,
        shell("Say", "echo kept", pipelineLogUri=f"s3://{s3_bucket}-typo/logs"),
    )
    code, text = Terminal(["--local", str(path)], tmp_path).finish()
    assert code == 0, text
    assert len(made_dirs(tmp_path)) == 1, text
    (kept,) = made_dirs(tmp_path)
    assert f"{s3_bucket}-typo" in text, text
    assert re.search(rf"^work dir {re.escape(str(kept))} kept", text, re.M), text
    assert list(kept.glob("attempts/*/Say/*/*/StdOutput")), text


def test_an_invalid_definition_leaves_no_work_dir(tmp_path: Path) -> None:
    path = definition(tmp_path, shell("Bad", "true", dependsOn={"ref": "Nowhere"}))
    code, text = Terminal(["--local", str(path)], tmp_path).finish()
    assert code == 78, text
    assert "Nowhere" in text, text
    assert made_dirs(tmp_path) == [], text


def test_a_flag_run_local_does_not_use_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            "--local",
            str(EXAMPLES / "hello.json"),
            "--worker-group",
            "other",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert "run --local does not use --worker-group" in result.stderr
    assert made_dirs(tmp_path) == []


def test_ctrl_c_with_an_instance_waiting_says_what_became_of_each(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    path = definition(
        tmp_path,
        shell("Long", f"touch {marker}; sleep 300"),
        shell("After", "true", dependsOn={"ref": "Long"}),
    )
    term = Terminal(["--local", str(path), "--kill-grace", "1"], tmp_path)
    term.wait_for(r"@Long_\S+\s+RUNNING\s+attempt 1$")
    term.process.send_signal(signal.SIGINT)
    term.wait_for(r"^draining")
    term.process.send_signal(signal.SIGINT)
    code, text = term.finish()
    assert code == 4, text
    assert re.search(
        r"^@After_\S+\s+NEVER_STARTED\s+0\s+the run ended while", text, re.M
    )
    long_row = re.search(r"^@Long_\S+\s+(\S+)\s+1\s+(.*)$", text, re.MULTILINE)
    assert long_row, text
    assert long_row.group(1) in {"STOPPED", "FAILED"}, text
    assert "WAITING_FOR_RUNNER" not in long_row.group(1), text
