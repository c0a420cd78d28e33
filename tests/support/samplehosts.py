"""Stand-ins for the hosts AWS's samples name, shared by the ``run --local`` and
the Airflow runs of those samples.

* ``stub``: an executable script in a folder (a ``sudo`` or ``mount`` the sample
  calls, put first on PATH).
* ``rds_instance_for``: an RDS instance in moto whose endpoint port is a test
  database's, for a sample's ``RdsDatabase``.
* ``hosts_namespace``: an argv prefix that runs a command with an /etc/hosts of
  its own, where moto's made-up RDS host name resolves to 127.0.0.1.
* ``samples_bucket`` (a fixture; tests/conftest.py loads this module as a plugin):
  moto with the bucket the samples' values files name.
"""

from __future__ import annotations

import contextlib
import stat
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.dbservers import DbServer

#: The copies of AWS's samples: definitions/ and values/.
SAMPLES = Path(__file__).parents[1] / "localservice" / "samples"
BUCKET = "dp-samples-bucket"  # the samples' values name it


@pytest.fixture
def samples_bucket(s3_admin: Any) -> Any:
    """moto with the samples' bucket in it."""
    with contextlib.suppress(s3_admin.exceptions.BucketAlreadyOwnedByYou):
        s3_admin.create_bucket(Bucket=BUCKET)
    return s3_admin


def stub(folder: Path, name: str, text: str) -> None:
    """``folder/name`` holding ``text``, executable by everyone."""
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def rds_instance_for(
    moto_server: str, instance_id: str, database: DbServer
) -> tuple[str, dict[str, str]]:
    """An RDS instance in moto whose endpoint port is ``database``'s; its
    endpoint host (made up by moto) and the environment variables that point
    the runner's RDS calls at moto."""
    rds = boto3.client("rds", endpoint_url=moto_server)
    with contextlib.suppress(rds.exceptions.DBInstanceAlreadyExistsFault):
        rds.create_db_instance(
            DBInstanceIdentifier=instance_id,
            Engine="mysql",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername=database.user,
            MasterUserPassword="irrelevant-123",
            DBName=database.database,
            Port=database.port,
        )
    (found,) = rds.describe_db_instances(DBInstanceIdentifier=instance_id)[
        "DBInstances"
    ]
    assert found["Endpoint"]["Port"] == database.port, found["Endpoint"]
    return found["Endpoint"]["Address"], {"AWS_ENDPOINT_URL_RDS": moto_server}


def hosts_namespace(tmp_path: Path, host: str) -> list[str]:
    """The argv prefix that runs a command in its own mount namespace (the
    tests run as root), with /etc/hosts bind-mounted over by a copy that maps
    ``host`` to 127.0.0.1: the name resolves so for that process tree only."""
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {host}\n")
    # Python, not sh: sh drops AIRFLOW_VAR_<DAG>.<NAME> (a dot) from the environment
    mount = (
        "import os, subprocess, sys; "
        "subprocess.run(['mount', '--bind', sys.argv[1], '/etc/hosts'], check=True); "
        "os.execvp(sys.argv[2], sys.argv[2:])"
    )
    return ["unshare", "--mount", "--", sys.executable, "-c", mount, str(hosts)]
