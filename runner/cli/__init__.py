"""The ``dp-runner`` command line: the composition root.

It loads ``Settings``, sets up logs and signals, builds the objects and wires them
together; it is the only package that reads ``Settings``, imports click, echoes or
exits. An error becomes a message and an exit code here and nowhere else, through
one table (``exits.EXIT_CODES``).

One module per concept: ``exits`` (the table), ``group`` (the group and its
migration hints), ``serve`` (``run`` and ``run --local``), ``execute`` (``exec``),
``tools`` (``doctor``, ``healthcheck``, ``local``) and ``export`` (``export
airflow``). This module only adds the commands to the group. The daemon itself is
put together and dispatched by ``daemon.py`` (and ``run --local`` by
``localrun.py``, ``exec`` by ``execone.py``): they are the rest of the composition
root.
"""

from __future__ import annotations

from runner.cli.execute import exec_
from runner.cli.exits import EXIT_CODES, exit_code
from runner.cli.export import export
from runner.cli.group import main
from runner.cli.serve import run
from runner.cli.tools import doctor, healthcheck, local

for _command in (run, exec_, doctor, healthcheck, local, export):
    main.add_command(_command)

__all__ = ["EXIT_CODES", "exit_code", "main"]
