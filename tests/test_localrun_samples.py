"""AWS's own sample pipelines, run to FINISHED by ``dp-runner run --local`` against
moto's S3, with their outputs checked.

The definitions and their values are those of ``tests/localservice/samples/``
(AWS's ``data-pipeline-samples``, unchanged). The values name the placeholder
bucket ``dp-samples-bucket``, which each test makes in moto. What a sample would
fetch from the internet or run as root is stubbed on the task's PATH (``wget``,
``sudo``): a stub writes down what it was asked and does the least that lets the
sample go on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.dbservers import DbServer
from tests.support.runners import run_local
from tests.support.samplehosts import (
    BUCKET,
    SAMPLES,
    hosts_namespace,
    rds_instance_for,
    stub,
)


def run_sample(
    name: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
):  # type: ignore[no-untyped-def]
    result = run_local(
        SAMPLES / "definitions" / name,
        tmp_path,
        "--parameter-values-uri",
        f"file://{SAMPLES / 'values' / name}",
        *args,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    return result


def summary(stdout: str) -> dict[str, tuple[str, str]]:
    """The closing summary: instance id -> (status, attempts)."""
    rows = {}
    for line in stdout.splitlines():
        fields = json.loads(line) if line.startswith("{") else {}
        if fields.get("event") == "local_run_instance":
            rows[fields["instance_id"]] = (fields["status"], fields["attempts"])
    return rows


def stdout_of(tmp_path: Path, component: str) -> str:
    (path,) = (tmp_path / "work").glob(f"attempts/*/{component}/*/*/StdOutput")
    return path.read_text()


def log_keys(s3: Any, prefix: str) -> list[str]:
    answer = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in answer.get("Contents", [])]


def test_helloworld(tmp_path: Path, samples_bucket: Any) -> None:
    result = run_sample("helloworld__helloworld.json", tmp_path)
    rows = summary(result.stdout)
    assert {status for status, _ in rows.values()} == {"FINISHED"}, rows
    assert any(i.startswith("@EC2Resource_HelloWorld_") for i in rows), rows
    assert stdout_of(tmp_path, "ShellCommandActivity_HelloWorld") == "Hello World!\n"
    # pipelineLogUri "#{myS3LogsPath}/HelloWorld": the attempt's logs are there
    keys = log_keys(samples_bucket, "logs/HelloWorld/")
    assert any(k.endswith("_Attempt=1/StdOutput") for k in keys), keys


def test_shell_command_with_s3_staging_directory(
    tmp_path: Path, samples_bucket: Any
) -> None:
    """Its README: put bashscript.sh in the staging path; the command runs it
    from ${INPUT1_STAGING_DIR} with scriptArgument "hello world" (as $1 of the
    command, which passes it on unquoted)."""
    samples_bucket.put_object(
        Bucket=BUCKET,
        Key="staging/bashscript.sh",
        Body=b'echo "argument: $1"\necho "staged: $(basename "$0")"\n',
    )
    name = "ShellCommandWithS3StagingDirectory__shellcommandwiths3stagingdir.json"
    result = run_sample(name, tmp_path)
    rows = summary(result.stdout)
    assert {status for status, _ in rows.values()} == {"FINISHED"}, rows
    # the sample's command passes $1 unquoted: bash splits "hello world"
    assert stdout_of(tmp_path, "Shell_Command_Staging_Activity") == (
        "argument: hello\nstaged: bashscript.sh\n"
    )


def test_efs_backup_one_node(tmp_path: Path, samples_bucket: Any) -> None:
    """The sample's command (its myShellCmd default): wget the backup script,
    chmod it, run it with the five scriptArguments. ``wget`` is stubbed with a
    script of ours that mounts with sudo; ``sudo`` writes down what it was
    asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "sudo.log"
    stub(bin_dir, "sudo", f'#!/bin/sh\necho "$*" >> {asked}\n')
    backup = (
        "#!/bin/sh\n"
        'sudo mount -t nfs "$1" /mnt/efs-source\n'
        'sudo mount -t nfs "$2" /mnt/efs-backup\n'
        'echo "backup $5: $3, keep $4"\n'
    )
    stub(
        bin_dir,
        "wget",
        f'#!/bin/sh\ncat > "$(basename "$1")" <<\'EOF\'\n{backup}EOF\n',
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = run_sample("EFSBackup__1-Node-EFSBackupPipeline.json", tmp_path, env=env)
    rows = summary(result.stdout)
    assert {status for status, _ in rows.values()} == {"FINISHED"}, rows
    # the parameters' defaults, as the sample declares them
    assert asked.read_text().splitlines() == [
        "mount -t nfs 10.0.1.32:/ /mnt/efs-source",
        "mount -t nfs 10.0.1.75:/ /mnt/efs-backup",
    ]
    output = stdout_of(tmp_path, "ShellCommandActivityObj")
    assert output == "backup backup-fs-12345678: daily, keep 7\n"


def test_a_hadoop_terasort_shaped_script_uri_sees_its_arguments(
    tmp_path: Path, samples_bucket: Any
) -> None:
    """As AWS's HadoopTerasort sample: a ShellCommandActivity with scriptUri and
    scriptArgument. Accepted (the warning it gets is
    test_validation_rules'), and the script sees $1 and $2."""
    samples_bucket.put_object(
        Bucket=BUCKET,
        Key="scripts/teragen.sh",
        Body=b'#!/bin/sh\necho "rows: $1, then: $2"\n',
    )
    path = tmp_path / "terasort.json"
    path.write_text(
        json.dumps(
            {
                "objects": [
                    {"id": "Default", "scheduleType": "ondemand"},
                    {
                        "id": "TeraGen",
                        "type": "ShellCommandActivity",
                        "workerGroup": "terasort",
                        "scriptUri": f"s3://{BUCKET}/scripts/teragen.sh",
                        "scriptArgument": ["#{myRows}", "sort"],
                    },
                ],
                "parameters": [{"id": "myRows", "type": "String"}],
                "values": {"myRows": "1000000"},
            }
        )
    )
    result = run_local(path, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert stdout_of(tmp_path, "TeraGen") == "rows: 1000000, then: sort\n"


def test_rds_to_s3(tmp_path: Path, samples_bucket: Any, mysql_db: DbServer) -> None:
    """The sample's values, its placeholder RDS host and login replaced by the
    test MariaDB's; its CopyActivity copies the songs table to S3 as CSV."""
    mysql_db.query("CREATE TABLE songs (id INT PRIMARY KEY, title VARCHAR(40))")
    mysql_db.query("INSERT INTO songs VALUES (1, 'Blue'), (2, 'Green, again')")
    name = "RDStoS3__RDStoS3Pipeline.json"
    values = json.loads((SAMPLES / "values" / name).read_text())
    values["values"] |= {
        "myRDSConnectStr": mysql_db.url,
        "myRDSUsername": mysql_db.user,
        "*myRDSPassword": mysql_db.password,
    }
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    result = run_local(
        SAMPLES / "definitions" / name,
        tmp_path,
        "--parameter-values-uri",
        f"file://{values_file}",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    rows = summary(result.stdout)
    assert {status for status, _ in rows.values()} == {"FINISHED"}, rows
    (copy,) = [i for i in rows if i.startswith("@RDStoS3CopyActivity_")]
    slot = copy.split("_", 1)[1].replace("T", "-").replace(":", "-")
    keys = log_keys(samples_bucket, f"out/{slot}/")
    assert keys, (slot, log_keys(samples_bucket, "out/"))
    body = b"".join(
        samples_bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys
    )
    # AWS's CSV for a data node copy: a comma in a value is escaped with "\\"
    assert body.decode().splitlines() == ["1,Blue", "2,Green\\, again"], body
    assert mysql_db.password not in result.stdout + result.stderr


# SQLActivityWithTimeout: attemptTimeout and reportProgressTimeout "1 Hour". At
# this clock factor a scaled hour would be 14.4 s; the script's statement sleeps
# longer, so it finishes only if the limit is real time (issue 28).
SQL_TIME_SCALE = 0.004
SQL_SLEEP_S = 16  # the script's DO SLEEP
SQL_SCRIPT = """
CREATE TABLE timeout_check (started DATETIME(3), finished DATETIME(3));
INSERT INTO timeout_check (started) VALUES (NOW(3));
DO SLEEP(16);
UPDATE timeout_check SET finished = NOW(3);
"""


def test_sql_activity_with_timeout(
    tmp_path: Path, samples_bucket: Any, moto_server: str, mysql_db: DbServer
) -> None:
    """The sample's RdsDatabase names rdsInstanceId "rds1": moto answers
    DescribeDBInstances with the test MariaDB's port and a made-up host, which
    resolves to 127.0.0.1 inside the runner's mount namespace. The script at
    the sample's scriptUri runs one statement past the scaled hour; the sample's
    Ec2Resource is run --local's own worker group."""
    samples_bucket.create_bucket(Bucket="data-pipeline-samples")
    samples_bucket.put_object(
        Bucket="data-pipeline-samples",
        Key="sqlactivity/script.sql",
        Body=SQL_SCRIPT.encode(),
    )
    name = "SQLActivityWithTimeout__pipeline.json"
    values = json.loads((SAMPLES / "values" / name).read_text())
    host, rds_env = rds_instance_for(moto_server, values["values"]["myRDSId"], mysql_db)
    env = {**os.environ, **rds_env}
    values["values"] |= {
        "myRDSUsername": mysql_db.user,
        "myRDSPassword": mysql_db.password,
    }
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    result = run_local(
        SAMPLES / "definitions" / name,
        tmp_path,
        "--parameter-values-uri",
        f"file://{values_file}",
        "--time-scale",
        str(SQL_TIME_SCALE),
        env=env,
        prefix=hosts_namespace(tmp_path, host),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    rows = summary(result.stdout)
    assert {status for status, _ in rows.values()} == {"FINISHED"}, rows
    (activity,) = [i for i in rows if i.startswith("@ActivityId_wRpKi_")]
    assert str(rows[activity][1]) == "1", rows  # one attempt: never timed out
    ((started, finished),) = mysql_db.query(
        "SELECT started, finished FROM timeout_check"
    )
    took = (finished - started).total_seconds()
    assert took >= SQL_SLEEP_S > 3600 * SQL_TIME_SCALE, took
    assert mysql_db.password not in result.stdout + result.stderr
