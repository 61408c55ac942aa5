"""Every documentation link of an alert policy stays within the Monitoring API's limits.

`Link.displayName` "must not be empty or exceed 63 characters"
(monitoring_v3_messages.Link): a dashboard with a long title must still
deploy, its link name shortened, never the policy refused at `pulumi up`.
"""

from __future__ import annotations

import pytest

from phase3ops.alerts.policies import documentation_body
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.monitoring.api_limits import MAX_LINK_DISPLAY_NAME
from tests.support.repo_copy import REPO_ROOT

URL = "https://console.cloud.google.com/monitoring/dashboards/builder/abc"


@pytest.fixture(scope="module")
def rule():
    return load_alert_specs(REPO_ROOT / "alerts", "dev").rules[0]


@pytest.mark.parametrize("length", [1, 52, 53, 61, 200, 512])
def test_a_dashboard_link_name_is_at_most_63_characters_whatever_the_title(rule, length):
    title = ("Phase 3 hand-off " * 40)[:length].strip() or "x"
    links = documentation_body(rule, "https://example.com/", [(title, URL)])["links"]
    assert MAX_LINK_DISPLAY_NAME == 63
    assert all(0 < len(link["display_name"]) <= MAX_LINK_DISPLAY_NAME for link in links), links
    assert links[1]["url"] == URL
    assert links[1]["display_name"].startswith("Dashboard: ")


def test_a_title_that_fits_is_kept_whole_and_a_long_one_says_it_was_cut(rule):
    fits = "x" * (MAX_LINK_DISPLAY_NAME - len("Dashboard: "))
    assert documentation_body(rule, "https://e/", [(fits, URL)])["links"][1]["display_name"] == f"Dashboard: {fits}"
    cut = documentation_body(rule, "https://e/", [(fits + "y", URL)])["links"][1]["display_name"]
    assert len(cut) == MAX_LINK_DISPLAY_NAME and cut.endswith("…")
