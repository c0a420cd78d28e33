"""The database child: the program that talks to databases, run as a process.

Owns: everything that runs inside ``python -m runner.dbchild`` and only there:
``dbjob`` (the program: the job, the stop signals, the result file), ``dbsession``
(a connection to PostgreSQL, Redshift or MySQL/MariaDB through psycopg or PyMySQL),
``copyjob`` (CopyActivity's transfers between S3 and a table), ``pgcopy``
(PostgreSQL's COPY protocol), ``dbrows`` (rows to batched INSERTs),
``dialect`` (the DG's CSV/TSV dialect), ``sqlscript`` (a script split into
statements) and ``redshiftsql`` (Redshift's session and INSERT texts).

Must not: import the worker, ``task/`` or the faces (``cli``, ``localrun``,
``daemon``); be imported by anything outside this package (import contracts in
pyproject.toml). The planners in ``runner/activities/`` describe a job as JSON and
hand it to this program (``activities/dbprocess.py``); they never import it.

Why this way: the drivers, their C extensions and their threads stay out of the
runner, so a driver crash or leak ends one task, not the runner; and the package
boundary is a rule the import linter checks, not a docstring.
"""
