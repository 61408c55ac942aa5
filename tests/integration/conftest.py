"""Fixtures of the emulator tests: pipelines wired as infra would wire them (tests/support/pipelines.py),
and the analytics runner on the emulators and DuckDB (tests/support/analytics_runs.py)."""

from __future__ import annotations

import pytest

from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from tests.support.analytics_runs import Analytics, make_analytics
from tests.support.pipelines import make_pipeline, short_lease_spec_file


@pytest.fixture
def short_lease_spec(tmp_path) -> PipelineSpec:
    return load_pipeline_spec(short_lease_spec_file(tmp_path))


@pytest.fixture
def pipeline(gcp_project, short_lease_spec):
    pipeline = make_pipeline(gcp_project, short_lease_spec)
    yield pipeline
    pipeline.stop()


@pytest.fixture
def analytics(gcp_project, tmp_path) -> Analytics:
    return make_analytics(gcp_project, tmp_path)
