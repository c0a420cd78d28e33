"""`dp-runner run --local examples/staging.json` end to end against moto's S3 server.

The CLI runs as a real process. boto3 in both the embedded service (which checks the
S3KeyExists precondition itself) and the runner (which stages, uploads stdout and the
attempt logs) reach moto through AWS_ENDPOINT_URL_S3 only. The bucket goes in through
the definition's `values`, in a temporary copy of the example.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.runners import REPO, run_local

EXAMPLE = REPO / "examples" / "staging.json"
INPUTS = {"a.txt": b"hello\nworld\n", "b.txt": b"data pipeline\n"}


def definition_copy(
    tmp_path: Path, bucket: str, *, prefix: str = "demo", timeout: str = ""
) -> Path:
    """The example with the test's bucket (and a shorter preconditionTimeout)."""
    doc = json.loads(EXAMPLE.read_text())
    doc["values"] = {"myBucket": bucket, "myPrefix": prefix}
    if timeout:
        (ready,) = [o for o in doc["objects"] if o["id"] == "RawLinesReady"]
        ready["preconditionTimeout"] = timeout
    path = tmp_path / f"staging-{prefix}.json"
    path.write_text(json.dumps(doc))
    return path


def summary(stdout: str, prefix: str) -> tuple[str, str]:
    """(status, attempts) of the instance whose id starts with prefix, from the
    closing summary's JSON lines."""
    for line in stdout.splitlines():
        fields = json.loads(line) if line.startswith("{") else {}
        if fields.get("event") == "local_run_instance" and fields[
            "instance_id"
        ].startswith(prefix):
            return fields["status"], fields["attempts"]
    return ("", "")


def keys(s3_admin: Any, bucket: str, prefix: str) -> list[str]:
    answer = s3_admin.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


def body(s3_admin: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3_admin.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_staging_example_runs_end_to_end(
    tmp_path: Path, s3_admin: Any, s3_bucket: str
) -> None:
    for name, data in INPUTS.items():
        s3_admin.put_object(Bucket=s3_bucket, Key=f"demo/input/{name}", Body=data)
    s3_admin.put_object(Bucket=s3_bucket, Key="demo/input/_SUCCESS", Body=b"")

    done = run_local(definition_copy(tmp_path, s3_bucket), tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert keys(s3_admin, s3_bucket, "demo/output/") == [
        "demo/output/a.txt",
        "demo/output/b.txt",
    ]
    for name, data in INPUTS.items():
        assert body(s3_admin, s3_bucket, f"demo/output/{name}") == data.upper()
    report = body(s3_admin, s3_bucket, "demo/reports/uppercase-stdout.txt")
    assert report == b"uppercased 2 files\n"
    logs = keys(s3_admin, s3_bucket, "demo/logs/")
    attempt = r"demo/logs/df-\w+/Uppercase/@Uppercase_[^/]+/@Uppercase_[^/]+_Attempt=1"
    assert any(re.fullmatch(f"{attempt}/StdOutput", key) for key in logs), logs
    assert any(re.fullmatch(f"{attempt}/StdError", key) for key in logs), logs
    # Checked by the service: one attempt, FINISHED (no longer "treated as met").
    assert summary(done.stdout, "@RawLinesReady_") == ("FINISHED", "1"), done.stdout


def test_staging_example_stops_when_the_input_never_arrives(
    tmp_path: Path, s3_admin: Any, s3_bucket: str
) -> None:
    s3_admin.put_object(Bucket=s3_bucket, Key="late/input/a.txt", Body=b"x\n")

    done = run_local(
        definition_copy(tmp_path, s3_bucket, prefix="late", timeout="1 minute"),
        tmp_path,
    )

    assert done.returncode == 4, done.stdout + done.stderr[-3000:]
    assert summary(done.stdout, "@RawLinesReady_")[0] == "TIMEDOUT", done.stdout
    assert summary(done.stdout, "@Uppercase_")[0] == "CASCADE_FAILED", done.stdout
    assert keys(s3_admin, s3_bucket, "late/output/") == []
