"""The ``dp-runner`` group: the Java runner's flags, and ``run``'s options given
without ``run``, are answered before click parses them. It owns no command: the
package's ``__init__`` adds them, so that this module stays the group alone.
"""

from __future__ import annotations

import click

from runner import migration


class _Main(click.Group):
    """The group: the Java runner's flags, and ``run``'s options given without
    ``run``, are answered before click parses them (``_migration_hints``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _migration_hints(ctx, args, self.commands.get("run"))
        return super().parse_args(ctx, args)


def _migration_hints(
    ctx: click.Context, args: list[str], run_command: click.Command | None
) -> None:
    """One line on stderr and exit 2 for a Java Task Runner flag (its dp-runner
    equivalent) or for ``dp-runner --worker-group wg`` (the ``run`` it needs)."""
    answer = migration.java_flag_answer(args)
    if answer is None and run_command is not None:
        options = {o for p in run_command.params for o in getattr(p, "opts", ())}
        answer = migration.misplaced_run_option(args, options)
    if answer is not None:
        click.echo(f"dp-runner: {answer}", err=True)
        ctx.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dp-runner")
def main() -> None:
    """dp-runner: a task runner for AWS Data Pipeline."""
