"""`python -m runner` and the `dp-runner` script run the `dp-runner` command line.

The stop signals are held (``signals.hold_stop_signals``) before the command line
is imported: as a container's PID 1, the runner would otherwise lose a SIGTERM that
arrives during its imports, most of a second.
"""

from runner.signals import hold_stop_signals


def main() -> None:
    """The ``dp-runner`` entry point."""
    hold_stop_signals()
    from runner.cli import main as cli  # noqa: PLC0415 - after the signals are held

    cli()


if __name__ == "__main__":
    main()
