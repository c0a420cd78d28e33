"""`python -m runner` and the `dp-runner` script run the `dp-runner` command line.

The stop signals are held (``signals.hold_stop_signals``) before the command line
is imported: as a container's PID 1, the runner would otherwise lose a SIGTERM that
arrives during its imports, most of a second.

``dp-runner healthcheck`` branches off first, to ``healthprobe``: the probe runs
every few seconds and must not pay for click, pydantic and boto3.
"""

import sys


def main() -> None:
    """The ``dp-runner`` entry point."""
    if sys.argv[1:2] == ["healthcheck"]:
        from runner.healthprobe import main as probe  # noqa: PLC0415 - cheap path

        sys.exit(probe(sys.argv[2:]))
    from runner.signals import hold_stop_signals  # noqa: PLC0415 - after the branch

    hold_stop_signals()
    from runner.cli import main as cli  # noqa: PLC0415 - after the signals are held

    cli()


if __name__ == "__main__":
    main()
