"""A guard on xdist's groups: a run whose groups xdist cannot see stops at once.

Load it from the root conftest with ``pytest_plugins = ["tests.support.groups"]``.

tests/conftest.py marks the tests that share a costly fixture with an
``xdist_group``; pytest-xdist's ``--dist loadgroup`` reads the mark on each worker
and appends ``@group`` to the test's node id, which its scheduler splits on. When
that append has no effect (pytest 9.2 keeps the node id elsewhere, and xdist 3.8
still sets the old attribute), every group silently becomes one test per unit:
each worker starts its own database servers and module fixtures, and the suite
runs minutes longer while passing. This plugin turns that into an error naming
the versions, instead of a slow green run. It must not change any test or mark:
it only checks, after xdist's own hook.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest


@pytest.hookimpl(trylast=True)  # after xdist's worker has appended the groups
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not getattr(config.option, "loadgroup", False):
        return  # not an xdist worker under --dist loadgroup
    for item in items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            versions = f"pytest {version('pytest')}, xdist {version('pytest-xdist')}"
            raise pytest.UsageError(
                f"--dist loadgroup cannot see the group of {item.nodeid} "
                f"({versions}): constraints-dev.txt pins a pair that works"
            )
