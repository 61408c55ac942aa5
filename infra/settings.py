"""The stack's configuration, read once and checked, with errors that name the key.

Keys (declared with descriptions in Pulumi.yaml; values in Pulumi.<stack>.yaml):

  gcp:project                  GCP project id (required)
  gcp:region                   region of every regional resource (default us-west2)
  <project>:analyticsImage     analytics service image pinned by digest: <repo>@sha256:<64 hex> (required)
  <project>:analyticsImageCommit  the git commit (40 lowercase hex) that image was built from, set with
                               it at build time (pulumi config set analyticsImageCommit $(git rev-parse HEAD));
                               the source-commit label of the service's revisions and the check jobs.
                               Optional: unset (or empty), no label, and deployment_state says "unknown"
  <project>:runbookBaseUrl     where docs/runbook.md is browsable, e.g. https://github.com/<org>/<repo>/blob/main/ (required)
  <project>:team               owning team, a label on every resource (default data-platform)
  <project>:functionMaxInstances, functionTimeoutSeconds, serviceMaxInstances (bounded defaults)
  <project>:logMetricWaitSeconds  how long a new log-based metric gets to become queryable before
                               the alert policy on it is created (default 600: the API's "up to 10 minutes")
  <project>:<tokenConfigKey>   one secret Slack token per channel in alerts/channels.yaml
                               (pulumi config set --secret slackOncallToken xoxb-...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

DIGEST_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{1,63}$")
# A full commit as `git rev-parse HEAD` prints it. Also a valid label value (at most 63 lowercase
# letters, digits, _ and -), which the source-commit label needs.
GIT_COMMIT = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_REGION = "us-west2"


class StackConfigError(Exception):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class StackSettings:
    project: str
    region: str
    analytics_image: str
    analytics_image_commit: str | None  # the commit analytics_image was built from; None when the stack does not say
    runbook_base_url: str
    team: str
    function_max_instances: int
    function_timeout_seconds: int
    service_max_instances: int
    log_metric_wait_seconds: int

    @property
    def labels(self) -> dict[str, str]:
        """Labels every resource that takes labels carries (plus its component)."""
        return {"managed-by": "pulumi", "team": self.team, "stack": pulumi.get_stack()}


def load_settings() -> StackSettings:
    gcp = pulumi.Config("gcp")
    own = pulumi.Config()
    name = pulumi.get_project()
    problems: list[str] = []

    def require(config: pulumi.Config, key: str) -> str:
        value = config.get(key)
        if not value:
            problems.append(f"{config.name}:{key} is not set (pulumi config set {_cli_key(config, key, name)} <value>)")
            return ""
        return value

    def bounded(key: str, default: int, low: int, high: int) -> int:
        try:
            value = own.get_int(key)
        except pulumi.ConfigTypeError:
            problems.append(f"{name}:{key} must be an integer")
            return default
        value = default if value is None else value
        if not low <= value <= high:
            problems.append(f"{name}:{key} must be between {low} and {high}, got {value}")
        return value

    project = require(gcp, "project")
    region = gcp.get("region") or DEFAULT_REGION
    image = require(own, "analyticsImage")
    if image and not DIGEST_IMAGE.match(image):
        problems.append(
            f"{name}:analyticsImage must be pinned by digest (<registry>/<repository>@sha256:<64 hex>), got {image!r}"
        )
    image_commit = own.get("analyticsImageCommit") or None  # Pulumi.yaml's default is "": not set
    if image_commit is not None and not GIT_COMMIT.match(image_commit):
        problems.append(
            f"{name}:analyticsImageCommit in Pulumi.{pulumi.get_stack()}.yaml must be the full commit the image was built from "
            f"(40 lowercase hex digits, as `git rev-parse HEAD` prints it), got {image_commit!r}; "
            f"set it with `pulumi config set analyticsImageCommit $(git rev-parse HEAD)` where the image is built, or remove it"
        )
    runbook = require(own, "runbookBaseUrl")
    if runbook and not runbook.startswith("https://"):
        problems.append(f"{name}:runbookBaseUrl must be an https URL, got {runbook!r}")
    team = own.get("team") or "data-platform"
    if not LABEL_VALUE.match(team):
        problems.append(f"{name}:team must be a label value (lowercase letters, digits, - and _), got {team!r}")
    settings = StackSettings(
        project=project,
        region=region,
        analytics_image=image,
        analytics_image_commit=image_commit,
        runbook_base_url=runbook,
        team=team,
        function_max_instances=bounded("functionMaxInstances", 10, 1, 100),
        function_timeout_seconds=bounded("functionTimeoutSeconds", 120, 10, 540),
        service_max_instances=bounded("serviceMaxInstances", 5, 1, 100),
        log_metric_wait_seconds=bounded("logMetricWaitSeconds", 600, 0, 900),
    )
    if problems:
        raise StackConfigError("invalid stack configuration:\n  " + "\n  ".join(problems))
    return settings


def _cli_key(config: pulumi.Config, key: str, project: str) -> str:
    return f"{config.name}:{key}" if config.name != project else key
