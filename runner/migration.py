"""What the Java Task Runner's command line becomes in dp-runner.

Owns: the table of the Java runner's flags (TaskRunner-1.0.jar ``--help`` and the
Developer Guide's options page) with dp-runner's equivalent of each, or "none,
because ...", and the two answers ``cli/`` gives before click parses anything:
a Java flag anywhere on the command line, and one of ``run``'s options given
without ``run``.

Must not: import click, print or exit (``cli/`` turns an answer into one line on
stderr and exit 2), or guess: a flag that is in neither table is click's to refuse.

Why before click: click answers ``--proxyUsername`` with "Did you mean
'--hostname'?" and ``dp-runner --worker-group wg`` with "No such option"; someone
moving a unit file from the Java runner needs the flag that replaces theirs.
The Java runner's ``--config`` (a credentials JSON file) and ``--region`` (default
us-east-1) keep their names here; ``configsources`` answers a JSON ``--config``.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence

_PROXY_ENV = (
    "HTTPS_PROXY=http://HOST:PORT in the environment "
    "(/etc/dp-runner/environment for the unit)"
)
_NTLM = (
    "none: botocore's proxy support has no NTLM; run an NTLM-authenticating "
    "local proxy (cntlm) and point HTTPS_PROXY at it"
)

#: The Java runner's flags, as its ``--help`` spells them, and what replaces each.
JAVA_FLAGS: dict[str, str] = {
    "--workerGroup": "--worker-group NAME (repeat it: one process serves several)",
    "--accessId": (
        "none: keys never go on a command line; boto3's credential chain "
        "(instance profile, AWS_PROFILE, AWS_ACCESS_KEY_ID in the environment)"
    ),
    "--secretKey": (
        "none: keys never go on a command line; boto3's credential chain "
        "(instance profile, AWS_PROFILE, AWS_SECRET_ACCESS_KEY in the environment)"
    ),
    "--endpoint": "--endpoint-url URL (or AWS_ENDPOINT_URL_DATA_PIPELINE)",
    "--taskrunnerId": "--taskrunner-id ID (default: generated once and kept)",
    "--output": "--work-dir DIR (attempt folders keep StdOutput and StdError)",
    "--logUri": "--log-uri s3://BUCKET/PREFIX/ (leave it out for the Java 'none')",
    "--tasks": "--max-tasks N (task slots; each worker group has one poller)",
    "--proxyHost": _PROXY_ENV,
    "--proxyPort": _PROXY_ENV,
    "--proxyUsername": (
        "HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT in the environment "
        "(/etc/dp-runner/environment, mode 0600)"
    ),
    "--proxyPassword": (
        "HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT in the environment "
        "(/etc/dp-runner/environment, mode 0600)"
    ),
    "--proxyDomain": _NTLM,
    "--proxyWorkstation": _NTLM,
    "--s3NoProxy": (
        "NO_PROXY naming the S3 endpoints, for example "
        "NO_PROXY=.s3.amazonaws.com,.s3.us-east-1.amazonaws.com"
    ),
    "--jdbcDriverS3Path": (
        "none: dp-runner reaches MySQL, PostgreSQL and Redshift with the Python "
        "drivers it installs (PyMySQL, psycopg); no JDBC driver is fetched"
    ),
}
#: Flags with the same name and meaning in dp-runner (``--region`` has no
#: us-east-1 default here: boto3's chain, or an error that says so).
SAME_NAME = ("--config", "--region", "--help")
_BY_LOWER = {flag.lower(): flag for flag in JAVA_FLAGS}


def java_flag_answer(args: Sequence[str]) -> str | None:
    """The answer to the first Java runner flag in ``args`` (any case, with or
    without ``=VALUE``), or None."""
    for arg in args:
        if arg == "--":
            return None
        java = _BY_LOWER.get(arg.split("=", 1)[0].lower())
        if arg.startswith("--") and java is not None:
            return (
                f"{arg.split('=', 1)[0]} is the Java Task Runner's flag; "
                f"in dp-runner: {JAVA_FLAGS[java]}"
            )
    return None


def misplaced_run_option(
    args: Sequence[str], run_options: Collection[str]
) -> str | None:
    """When ``args`` start with one of ``run``'s options (``dp-runner --worker-group
    wg``), the command line that was meant; else None."""
    if not args or not args[0].startswith("-"):
        return None
    name = args[0].split("=", 1)[0]
    if name not in run_options:
        return None
    return f"{name} is an option of run: dp-runner run {shlex.join(args)}"
