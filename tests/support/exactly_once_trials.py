"""What the exactly-once trials share: the lease and grace they run with, and how they report and judge
what reached Phase 4 (duplicate messages are reported, duplicate or lost work fails the test)."""

from __future__ import annotations

from pathlib import Path

from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from tests.support.pipelines import short_lease_spec_file

TRIALS = 20
LEASE, PUBLISH_TIMEOUT = 2, 1
GRACE = (
    6  # receipt_grace_seconds: longer than the 3 s delays below, as the shipped 900 s is longer than Eventarc's backoff
)
# How long the listener hears nothing more before the test judges what reached Phase 4. A trial's late
# duplicate is a publish that returned late, or whose bytes landed late: each test first waits for every
# handling it started to finish (`run_to_the_end`) and for every delayed request to land, the lease and
# the grace inside the scenario itself. What Pub/Sub accepted by then is on the listener's subscription
# within moments; the quiet spell covers that, and a slow pull on a loaded machine.
LISTEN = 2.0


def trial_spec(tmp_path: Path) -> PipelineSpec:
    return load_pipeline_spec(
        short_lease_spec_file(tmp_path, lease=LEASE, publish_timeout=PUBLISH_TIMEOUT, receipt_grace=GRACE)
    )


def report(record_property, scenario: str, trials: int, raced: int, result, expected) -> None:
    record_property(
        "hand_off",
        {
            "scenario": scenario,
            "trials": trials,
            "raced": raced,
            "duplicate_messages": result.duplicate_messages,
            "dates_with_duplicates": result.dates_with_duplicate_messages,
            "duplicate_work": result.duplicate_work,
            "lost": len(result.lost(expected)),
        },
    )


def assert_exactly_once_work(result, expected) -> None:
    assert result.lost(expected) == []
    assert result.duplicate_work == 0, {k: n for k, n in result.work.items() if n > 1}
    assert {key: min(n, 1) for key, n in result.work.items()} == expected
