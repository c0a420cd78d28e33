"""``dp-runner export airflow``: a definition becomes an Airflow DAG file.

Owns: the translation (``plan``: objects to tasks, edges, schedule, secrets, and
the list of what is not carried; ``schedule``: a Schedule to a timetable with the
same instants; ``render``: the plan as a readable Python file; ``export``: the
command's work) and the operators that file uses (``operator``: each task runs
``dp-runner exec`` as a subprocess).

Must not: import airflow or boto3 anywhere but ``operator``, which only Airflow
imports (the ``airflow`` extra); import click (``cli`` does).

Why a translation to ``dp-runner exec`` tasks rather than to Airflow's own
operators: exec runs each activity with the runner's own code, so expressions,
staging, containment, stops and secrets rules hold in Airflow as they do in Data
Pipeline, and the DAG only has to carry what a scheduler owns (order, time,
retries, alerts).
"""
