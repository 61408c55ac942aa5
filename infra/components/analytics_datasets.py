"""The BigQuery datasets: the analytics dataset this stack owns, and Phase 2's raw dataset it only reads.

The analytics dataset is created here, and only there may the analytics
service write (data editing on that dataset alone, never project-wide: the
reference's project-wide bigquery.dataEditor let it delete Phase 2's raw
tables). The raw dataset belongs to Phase 2: the program looks it up, so a
preview on a project without it stops with its name instead of deploying a
pipeline that cannot read its input, and grants read access on it.

If the pipeline this replaces already created the analytics dataset, adopt
it once before the first `pulumi up` (which is why the dataset is a
top-level resource, not a child of this component: `pulumi import` then
needs no parent URN that does not exist yet):
  pulumi import gcp:bigquery/dataset:Dataset nba_analytics projects/<project>/datasets/nba_analytics --protect
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options

EDITOR, VIEWER = "roles/bigquery.dataEditor", "roles/bigquery.dataViewer"


def analytics_dataset(
    project: str, location: str, dataset: str, labels: dict[str, str], opts: pulumi.ResourceOptions | None
) -> gcp.bigquery.Dataset:
    return gcp.bigquery.Dataset(
        dataset,
        dataset_id=dataset,
        project=project,
        location=location,
        description="Phase 3 analytics tables, written by nba-phase3-analytics-processors",
        labels={**labels, "component": "analytics"},
        delete_contents_on_destroy=False,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True)),
    )


@dataclass
class AnalyticsDatasetsArgs:
    project: str
    dataset: gcp.bigquery.Dataset
    dataset_name: str
    raw_dataset: str
    # workload -> member, per dataset
    analytics_editors: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    analytics_readers: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    raw_readers: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class AnalyticsDatasets(pulumi.ComponentResource):
    """Who may read and write the datasets, and the check that Phase 2's exists."""

    def __init__(self, name: str, args: AnalyticsDatasetsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:AnalyticsDatasets", name, None, opts)
        self.analytics = args.dataset
        # Fails the preview with the dataset's name when Phase 2's dataset is missing.
        self.raw = gcp.bigquery.get_dataset_output(dataset_id=args.raw_dataset, project=args.project)
        grants = [
            *((self.analytics.dataset_id, EDITOR, who, member) for who, member in args.analytics_editors.items()),
            *((self.analytics.dataset_id, VIEWER, who, member) for who, member in args.analytics_readers.items()),
            *((self.raw.dataset_id, VIEWER, who, member) for who, member in args.raw_readers.items()),
        ]
        for dataset_id, role, who, member in grants:
            label = args.dataset_name if dataset_id is self.analytics.dataset_id else args.raw_dataset
            gcp.bigquery.DatasetIamMember(
                f"{label}-{role.rsplit('.', 1)[-1]}-{who}",
                project=args.project,
                dataset_id=dataset_id,
                role=role,
                member=member,
                opts=child_options(self, opts),
            )
        self.register_outputs({"analytics": self.analytics.id, "raw": self.raw.id})
