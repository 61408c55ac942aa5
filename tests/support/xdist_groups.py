"""A pytest plugin: keep each `xdist_group`'s tests on one worker under `--dist loadgroup`.

xdist 3.8 groups tests by a `@group` suffix that its worker hook writes to
`item._nodeid`; pytest 9 keeps a node's id in `item._id` (a NodeId), so the
suffix never shows, and a group's tests spread over the workers, each worker
building the module fixture they were grouped to share (a local environment
apiece). This writes the suffix where pytest 9 reads it. Drop it when xdist
writes `_id` itself (tests/unit/test_xdist_groups.py then still passes).
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config, "workerinput", None) is None or not config.getvalue("loadgroup"):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)
