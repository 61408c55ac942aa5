"""A fresh project's first `pulumi up`: what must exist, and be waited for, before what needs it.

Held against the dev plan. Each test names the failure a fresh project
would show without it.
"""

from __future__ import annotations

import pytest

from tests.support.shipped_plans import shipped_plan

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
SLEEP = "time:index/sleep:Sleep"
PROJECT = "nba-props-dev"


@pytest.fixture(scope="module")
def dev():
    return shipped_plan("dev")


def by_urn(plan) -> dict:
    return {r.urn: r for r in plan.resources}


def waits_for(plan, resource, target) -> bool:
    """Whether `resource` is created after `target`: a dependency path through the plan."""
    index, seen, todo = by_urn(plan), set(), list(_needs(resource))
    while todo:
        urn = todo.pop()
        if urn == target.urn:
            return True
        if urn not in seen and urn in index:
            seen.add(urn)
            todo.extend(_needs(index[urn]))
    return False


def _needs(resource) -> list[str]:
    return [*resource.dependencies, *(u for urns in resource.property_dependencies.values() for u in urns)]


def account(plan, account_id: str):
    [found] = [a for a in plan.of_type("gcp:serviceaccount/account:Account") if a.inputs["accountId"] == account_id]
    return found


def functions(plan):
    return plan.of_type(FUNCTION)


def test_the_image_repository_is_created_after_its_api(dev):
    [repository] = dev.of_type(REPOSITORY)
    assert repository.inputs["repositoryId"] == "phase3"
    assert repository.inputs["format"] == "DOCKER"
    assert repository.inputs["location"] == "us-west2"
    [api] = [
        s
        for s in dev.of_type("gcp:projects/service:Service")
        if s.inputs["service"] == "artifactregistry.googleapis.com"
    ]
    assert waits_for(dev, repository, api)


def test_the_functions_build_into_that_repository_as_their_own_build_account(dev):
    """Since July 2024 a new project's default build account may lack the permissions to build a function."""
    [repository] = dev.of_type(REPOSITORY)
    builder = account(dev, "phase3-function-build")
    for function in functions(dev):
        build = function.inputs["buildConfig"]
        assert build["dockerRepository"] == repository.outputs["id"], function.name
        assert build["serviceAccount"] == f"projects/{PROJECT}/serviceAccounts/{builder.outputs['email']}"


def test_the_build_account_has_only_the_roles_google_lists_on_what_it_builds_from_and_into(dev):
    member = account(dev, "phase3-function-build").outputs["member"]
    grants = sorted(
        (r.type.split("/")[1].split(":")[0], r.inputs["role"])
        for r in dev.resources
        if r.inputs.get("member") == member
    )
    assert grants == [
        ("bucketIAMMember", "roles/storage.objectAdmin"),  # the function's source bucket only
        ("iAMMember", "roles/logging.logWriter"),
        ("repositoryIamMember", "roles/artifactregistry.writer"),  # the phase3 repository only
    ]


def test_the_service_agents_exist_and_are_waited_for_before_the_functions_and_the_push_subscription(dev):
    """'Permission denied while using the Eventarc Service Agent ... may take a few minutes'
    (terraform-provider-google#25294, pulumi-gcp#1290)."""
    identities = {i.inputs["service"]: i for i in dev.of_type(IDENTITY)}
    assert set(identities) == {"eventarc.googleapis.com", "pubsub.googleapis.com"}
    [wait] = [s for s in dev.of_type(SLEEP) if s.name == "service-agents-propagate"]
    assert all(waits_for(dev, wait, identity) for identity in identities.values())
    push = [s for s in dev.of_type("gcp:pubsub/subscription:Subscription") if s.inputs.get("pushConfig")]
    assert push and all(waits_for(dev, s, wait) for s in push)
    assert functions(dev) and all(waits_for(dev, f, wait) for f in functions(dev))


def test_the_functions_wait_for_their_build_accounts_grants_to_settle(dev):
    """Pulumi's gen2 builder example: 'builder permissions need to stabilize before it can pull the source zip'."""
    [wait] = [s for s in dev.of_type(SLEEP) if s.name == "function-build-grants-propagate"]
    member = account(dev, "phase3-function-build").outputs["member"]
    grants = [r for r in dev.resources if r.inputs.get("member") == member and "Member" in r.type.split(":")[-1]]
    scoped = [g for g in grants if g.type != "gcp:projects/iAMMember:IAMMember"]
    assert len(scoped) == 2 and all(waits_for(dev, wait, grant) for grant in scoped)
    assert all(waits_for(dev, f, wait) for f in functions(dev))


def test_the_pubsub_agent_may_mint_tokens_for_both_push_identities(dev):
    """Eventarc: 'If you enabled the Cloud Pub/Sub service agent on or before April 8, 2021, grant the
    Service Account Token Creator role' -- for the functions' trigger identity as for the push subscription's."""
    agent = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"
    grants = {
        r.inputs["serviceAccountId"].rsplit("/", 1)[1].split("@")[0]
        for r in dev.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/iam.serviceAccountTokenCreator" and r.inputs["member"] == agent
    }
    assert grants == {"phase3-orchestrator-trigger", "phase3-analytics-push"}


def test_the_receipts_function_runs_as_its_own_identity_that_cannot_publish_to_phase4(dev):
    [receipts] = [f for f in functions(dev) if f.inputs["name"] == "phase4-trigger-receipts"]
    email = receipts.inputs["serviceConfig"]["serviceAccountEmail"]
    assert email == account(dev, "phase3-trigger-receipts").outputs["email"]
    roles = sorted(r.inputs["role"] for r in dev.resources if r.inputs.get("member") == f"serviceAccount:{email}")
    assert roles == ["roles/datastore.user", "roles/logging.logWriter"]


def test_an_image_the_build_has_not_set_is_named_by_the_plan_and_stops_pulumi_up():
    """No invented digest in a stack file: the plan says NOT SET and how the build sets it;
    the program itself (as `pulumi up` runs it, no stand-in) stops naming the key."""
    from phase3ops.plan.mocks import PlanMocks
    from phase3ops.plan.plan import plan_stack
    from phase3ops.plan.render import as_text
    from phase3ops.plan.runner import program_from_main, run_program
    from tests.support.repo_copy import REPO_ROOT

    stack_plan = plan_stack(REPO_ROOT, "dev")
    key = "phase3-orchestration:analyticsImage"
    assert key in stack_plan.config.stand_ins
    text = as_text(stack_plan.result, [], stack_plan.preconditions, stack_plan.config.stand_ins)
    assert f"NOT SET: {key}" in text
    [image] = [p for p in stack_plan.preconditions if "analytics image" in p.what]
    assert "NOT SET" in image.what
    tag = "us-west2-docker.pkg.dev/nba-props-dev/phase3/nba-phase3-analytics-processors:$(git rev-parse HEAD)"
    for step in (
        "gcloud services enable artifactregistry.googleapis.com cloudbuild.googleapis.com",
        "gcloud artifacts repositories create phase3 --repository-format=docker --location us-west2",
        f"gcloud builds submit --tag {tag}",
        "pulumi config set analyticsImage",
    ):
        assert step in image.command, step
    adopt = next(i for i, p in enumerate(stack_plan.preconditions) if "--adopt" in p.command)
    assert stack_plan.preconditions.index(image) < adopt  # the repository the build made is then adopted

    config = stack_plan.config
    values = {k: v for k, v in config.values.items() if k != key}
    # The program's own module, as plan_stack imported it afresh (the class identity is per import).
    import infra.settings

    with pytest.raises(infra.settings.StackConfigError, match="analyticsImage is not set"):
        run_program(
            program_from_main(config.main),
            PlanMocks("nba-props-dev"),
            config.project,
            "dev",
            values,
            config.secret_keys,
        )
