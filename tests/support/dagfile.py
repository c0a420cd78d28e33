"""An exported DAG file, made from a definition written in a test and read back
without Airflow: its tasks, edges and literals.

The file is parsed with ``ast`` (never run), so ``make test`` checks the
translation without installing Airflow; ``make test-airflow`` runs such files in a
real Airflow.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.airflow.export import export


@dataclass
class DagFile:
    text: str
    #: task_id -> (operator class, {keyword: source text of the value})
    tasks: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)
    literals: dict[str, Any] = field(default_factory=dict)
    dag_args: dict[str, str] = field(default_factory=dict)


def read_dag(path: Path) -> DagFile:
    text = path.read_text()
    tree = ast.parse(text)
    dag = DagFile(text)
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            _assignment(dag, node, names, text)
        elif isinstance(node, ast.With):
            call = node.items[0].context_expr
            assert isinstance(call, ast.Call)
            dag.dag_args = {
                str(k.arg): ast.get_source_segment(text, k.value) or ""
                for k in call.keywords
            }
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            assert isinstance(node.left, ast.Name)
            assert isinstance(node.right, ast.Name)
            dag.edges.add((names[node.left.id], names[node.right.id]))
    return dag


def _assignment(
    dag: DagFile, node: ast.Assign, names: dict[str, str], text: str
) -> None:
    target = node.targets[0]
    assert isinstance(target, ast.Name)
    if target.id.isupper():
        dag.literals[target.id] = ast.literal_eval(node.value)
    elif isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
        kwargs = {
            str(k.arg): ast.get_source_segment(text, k.value) or ""
            for k in node.value.keywords
        }
        task_id = ast.literal_eval(kwargs["task_id"])
        names[target.id] = task_id
        dag.tasks[task_id] = (node.value.func.id, kwargs)


def write(tmp_path: Path, doc: dict[str, Any], name: str = "pipe") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def exported(tmp_path: Path, doc: dict[str, Any], **kwargs: Any) -> tuple[DagFile, Any]:
    out = tmp_path / "dag.py"
    report = export(write(tmp_path, doc), out, **kwargs)
    compile(out.read_text(), str(out), "exec")  # valid Python
    return read_dag(out), report


def scheduled(kind: str, schedule: dict[str, str], *objects: Any) -> dict[str, Any]:
    return {
        "objects": [
            {"id": "Default", "scheduleType": kind, "schedule": {"ref": "S"}},
            {"id": "S", "type": "Schedule", **schedule},
            *objects,
        ]
    }


def shell(obj_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": obj_id, "type": "ShellCommandActivity", "command": "true", **fields}
