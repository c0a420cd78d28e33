"""Shared by several test modules (moved here: no test module imports another)."""

from __future__ import annotations

from typing import Any


def s3_node(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "name": node_id, "type": "S3DataNode", **fields}


def copy(copy_id: str, source: str, target: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": copy_id,
        "name": copy_id,
        "type": "CopyActivity",
        "input": {"ref": source},
        "output": {"ref": target},
        "maximumRetries": "0",
        **fields,
    }
