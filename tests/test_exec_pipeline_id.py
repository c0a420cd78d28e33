"""``dp-runner exec --pipeline-id``: the slot runs under the id a scheduler
chose (an exported Airflow DAG passes one per DAG run), as ``@pipelineId`` in
the definition's expressions and ``DP_PIPELINE_ID`` in the task's environment;
without it, each exec makes a new one; a bad one is a usage error (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.execs import run_exec, slot


def definition(tmp_path: Path) -> Path:
    out = tmp_path / "ids"
    path = tmp_path / "ids.json"
    command = f'echo "$DP_PIPELINE_ID #{{@pipelineId}}" >> {out}'
    path.write_text(
        json.dumps(
            {
                "objects": [
                    {"id": "Default", "scheduleType": "ondemand", "workerGroup": "g"},
                    {"id": "Say", "type": "ShellCommandActivity", "command": command},
                ]
            }
        )
    )
    return path


def test_the_slot_runs_under_the_pipeline_id_given(tmp_path: Path) -> None:
    path = definition(tmp_path)
    start = slot(1).isoformat()
    for args in (["--pipeline-id", "df-RUN0000000000000001"], []):
        done = run_exec(
            path, tmp_path, "--object", "Say", "--scheduled-start", start, *args
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    given, made = [line.split() for line in (tmp_path / "ids").read_text().splitlines()]
    assert given == ["df-RUN0000000000000001"] * 2  # the variable, the expression
    assert made[0] == made[1] != given[0]
    assert made[0].startswith("df-")


def test_a_pipeline_id_that_is_no_folder_name_is_a_usage_error(
    tmp_path: Path,
) -> None:
    path = definition(tmp_path)
    for bad in ("../up", "df-a/b", "", "-df"):
        done = run_exec(
            path,
            tmp_path,
            "--object",
            "Say",
            "--scheduled-start",
            slot(1).isoformat(),
            f"--pipeline-id={bad}",
        )
        assert done.returncode == 2, (bad, done.stderr)
        assert "--pipeline-id" in done.stderr
    assert not (tmp_path / "ids").exists()
