"""``dp-runner run --local``: the one-command demo, as a newcomer runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import REPO, run_local

EXAMPLES = REPO / "examples"


def table(stdout: str) -> dict[str, list[str]]:
    """The closing table: instance id -> [status, attempts, error...]."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("@"):
            rows[parts[0]] = parts[1:]
    return rows


def test_hello_runs_to_completion(tmp_path: Path) -> None:
    result = run_local(EXAMPLES / "hello.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert [row[0] for row in rows.values()] == ["FINISHED"]
    (output,) = (tmp_path / "work").glob("attempts/*/*/*/*/StdOutput")
    assert output.read_text().startswith("hello, Data Pipeline, from ")


def test_demo_needs_no_aws_credentials(tmp_path: Path) -> None:
    """A newcomer's machine: no credentials anywhere, no instance role."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare |= {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_local(EXAMPLES / "hello.json", tmp_path, env=bare)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row[0] for row in table(result.stdout).values()] == ["FINISHED"]


def test_dependencies_precondition_and_retry(tmp_path: Path) -> None:
    result = run_local(EXAMPLES / "retry-and-depend.json", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = table(result.stdout)
    by_component = {iid.split("_")[0].lstrip("@"): row for iid, row in rows.items()}
    assert by_component["Transform"][:2] == ["FINISHED", "2"]
    assert all(row[0] == "FINISHED" for row in rows.values())
    loads = list((tmp_path / "work").glob("attempts/*/Load/*/*/StdOutput"))
    assert [p.read_text() for p in loads] == ["loaded sum 15\n"]


def test_unfinished_pipeline_exits_4(tmp_path: Path) -> None:
    definition = tmp_path / "fails.json"
    definition.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "Default",
                        "name": "Default",
                        "scheduleType": "ondemand",
                        "workerGroup": "wg",
                    },
                    {
                        "id": "Fail",
                        "name": "Fail",
                        "type": "ShellCommandActivity",
                        "command": "exit 7",
                        "maximumRetries": "1",
                    },
                ]
            }
        )
    )
    result = run_local(definition, tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr[-3000:]
    ((status, attempts, *error),) = table(result.stdout).values()
    assert (status, attempts) == ("FAILED", "2")
    assert error == ["ExitCode:7"]


def test_invalid_definition_exits_78(tmp_path: Path) -> None:
    definition = tmp_path / "bad.json"
    definition.write_text('{"objects": [{"name": "no id"}]}')
    result = run_local(definition, tmp_path)
    assert result.returncode == 78
    assert "id" in result.stderr
