"""The weekly drift job must not page over the dashboard: what the API reads back is no diff.

The API adds its defaults and leaves out what equals them; the provider
ignores keys only the API's copy has, and reports a key the program sends
that the API dropped (tests/support/monitoring_dashboard_api.py, with the
upstream issues). So the rendered JSON must send no value the API drops.
"""

from __future__ import annotations

import json

import pytest

from phase3ops.dashboards.render import dashboard_json
from phase3ops.dashboards.specs import load_dashboard_specs
from tests.support.monitoring_dashboard_api import normalised_by_the_api, provider_sees_a_diff
from tests.support.repo_copy import REPO_ROOT


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_refresh_of_every_shipped_dashboard_shows_no_diff(stack):
    dashboards = load_dashboard_specs(REPO_ROOT / "dashboards", stack).dashboards
    assert dashboards
    for dashboard in dashboards:
        rendered = dashboard_json(dashboard, {"stack": stack})
        refreshed = normalised_by_the_api(rendered)
        assert refreshed != json.dumps(json.loads(rendered), sort_keys=True)  # the API did add its defaults
        assert not provider_sees_a_diff(refreshed, rendered), dashboard.name


def test_a_value_the_api_drops_would_be_drift_every_week():
    """The guard the test above relies on: a zero position sent explicitly comes back missing."""
    sent = json.dumps({"mosaicLayout": {"columns": 48, "tiles": [{"xPos": 0, "yPos": 0, "width": 24, "height": 8}]}})
    assert provider_sees_a_diff(normalised_by_the_api(sent), sent)


def test_an_api_default_the_program_leaves_out_is_not_drift():
    sent = json.dumps({"widget": {"xyChart": {"dataSets": [{"plotType": "LINE"}]}}})
    refreshed = normalised_by_the_api(sent)
    assert '"mode": "COLOR"' in refreshed and '"targetAxis": "Y1"' in refreshed
    assert not provider_sees_a_diff(refreshed, sent)
