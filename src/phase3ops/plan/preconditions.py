"""What the infra program needs that it cannot create, each with the command that checks or provides it.

`phase3ops plan` lists these, in the order of a first deploy, so nobody
learns them from a failed `pulumi up`. Everything else the program uses it
creates itself (APIs, datasets it owns, identities, topics, functions, ...)
or checks before it changes anything (Phase 2's raw dataset is looked up:
a preview without it stops with its name).
"""

from __future__ import annotations

from dataclasses import dataclass

from phase3ops.plan.stack_config import StackConfig
from phase3ops.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class Precondition:
    what: str
    why: str
    command: str


def preconditions(config: StackConfig, pipeline: PipelineSpec) -> list[Precondition]:
    project = config.values.get("gcp:project", "<project>")
    region = config.values.get("gcp:region", "us-west2")
    own = lambda key: f"{config.project}:{key}"  # noqa: E731 - the stack file's full key
    unset = own("analyticsImage") in config.stand_ins
    tag = f"{region}-docker.pkg.dev/{project}/phase3/nba-phase3-analytics-processors:$(git rev-parse HEAD)"
    secrets = [key.split(":", 1)[1] for key in config.secret_keys]
    return [
        Precondition(
            "Service Usage and Cloud Resource Manager APIs enabled",
            "the program enables every other API it uses, through these two",
            f"gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com --project {project}",
        ),
        Precondition(
            "the deploying identity may create what the plan lists",
            "service accounts, IAM grants, functions, Cloud Run, Pub/Sub, BigQuery, Monitoring, Firestore indexes",
            f"gcloud projects get-iam-policy {project} (roles/owner, or the admin role of each service in the plan)",
        ),
        Precondition(
            "the Firestore (default) database, Native mode",
            "completions, trigger claims, receipts and locks live there; its location is chosen once, for good; "
            "a Datastore-mode database cannot hold them (the check fails: use another project)",
            f"test \"$(gcloud firestore databases describe --database='(default)' --project {project} "
            f"--format='value(type)' 2>/dev/null)\" = FIRESTORE_NATIVE "
            f"|| gcloud firestore databases create --location={region} --type=firestore-native --project {project}",
        ),
        Precondition(
            f"Phase 2's raw dataset {pipeline.analytics.raw_dataset}",
            "the processors read it; the program grants read access on it and stops the preview if it is missing",
            f"bq show --dataset {project}:{pipeline.analytics.raw_dataset}",
        ),
        Precondition(
            "the analytics image, built from Dockerfile into the phase3 repository and set by digest"
            + (" (NOT SET for this stack: the plan used a stand-in; pulumi up stops until it is set)" if unset else ""),
            "Cloud Run runs it by digest; the repository is created here first (with its API) for the build to push "
            "to, and adopted by the program in the next step",
            f"gcloud services enable artifactregistry.googleapis.com cloudbuild.googleapis.com --project {project} && "
            f"(gcloud artifacts repositories describe phase3 --location {region} --project {project} >/dev/null 2>&1 || "
            f"gcloud artifacts repositories create phase3 --repository-format=docker --location {region} --project {project}) && "
            f"gcloud builds submit --tag {tag} --project {project} . && "
            f'pulumi config set analyticsImage "$(gcloud artifacts docker images describe {tag} '
            f"--format='value(image_summary.fully_qualified_digest)')\" && "
            f'pulumi config set analyticsImageCommit "$(git rev-parse HEAD)"',
        ),
        Precondition(
            "what the pipeline this replaces already created under the same names, adopted once",
            f"the program creates its topics, subscriptions, service, functions, jobs and the dataset "
            f"{pipeline.analytics.dataset}; a create of an existing name fails: run the imports this prints",
            f"phase3ops plan --stack {config.stack} --adopt | sh",
        ),
        Precondition(
            "the stack's secrets",
            "one Slack token per channel in alerts/channels.yaml",
            " && ".join(f"pulumi config set --secret {key} <token>" for key in secrets) or "(none declared)",
        ),
        Precondition(
            "the Pulumi plugins: gcp, and pulumiverse's time (the wait before alert policies on new log metrics)",
            "`pulumi up` installs both on first use; behind a proxy, install them by hand",
            "pulumi plugin install resource time v0.1.1 --server github://api.github.com/pulumiverse",
        ),
    ]
