"""Values held against what Google documents for them, where a field name alone proves nothing.

The field and enum check (plan_conformance.py) accepts a timeout of "nine
minutes", an ack deadline of 900 or a role that does not exist: the API
messages type them as strings and integers. These rules check the values,
each with where its limit is documented:

- durations: google.protobuf.Duration's JSON form, seconds with up to nine
  fractional digits and an `s` (every Duration field of these APIs);
- numeric ranges and string limits the API messages' field docs state;
- required inputs: the parameters pulumi-gcp's typed Args classes take
  without a default (the provider refuses the resource without them);
- IAM role names: a vendored list of the predefined roles (data/, with the
  command that refreshes it), or a custom role's full name;
- time zones: the tz database; function runtimes: the ids Google lists.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import zoneinfo
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.conformance.plan_conformance import NOT_GOOGLE_APIS, Finding

DATA = Path(__file__).parent / "data"
DURATION = re.compile(r"\d+(\.\d{1,9})?s")
# Keys that are google.protobuf.Duration fields wherever they appear in the APIs the plan uses.
DURATION_KEYS = frozenset(
    {
        "timeout",
        "duration",
        "alignmentPeriod",
        "minAlignmentPeriod",
        "autoClose",
        "period",
        "messageRetentionDuration",
        "minimumBackoff",
        "maximumBackoff",
        "ttl",
        "attemptDeadline",
        "minBackoffDuration",
        "maxBackoffDuration",
        "maxRetryDuration",
        "evaluationInterval",
        "timeshiftDuration",
    }
)
ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])")
CUSTOM_ROLE = re.compile(r"(projects|organizations)/[^/]+/roles/[A-Za-z0-9_.]+")


@cache
def _listed(name: str) -> frozenset[str]:
    lines = (DATA / name).read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def predefined_roles() -> frozenset[str]:
    return _listed("predefined-roles.txt")


def function_runtimes() -> frozenset[str]:
    return _listed("function-runtimes.txt")


def _between(low: int, high: int, source: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            return f"{value} is outside {low}-{high} ({source})"
        return None

    return check


def _at_most_chars(limit: int, source: str, *, nonempty: bool = True) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and (len(value) > limit or (nonempty and not value)):
            return f"{len(value)} characters, the API takes 1-{limit} ({source})"
        return None

    return check


def _account_id(value: Any) -> str | None:
    if isinstance(value, str) and not (6 <= len(value) <= 30 and ACCOUNT_ID.fullmatch(value)):
        return f"{value!r}: an account id is 6-30 characters matching [a-z]([-a-z0-9]*[a-z0-9]) (CreateServiceAccountRequest)"
    return None


def _time_zone(value: Any) -> str | None:
    if isinstance(value, str) and value not in zoneinfo.available_timezones():
        return f"{value!r} is not a time zone of the tz database (Job.timeZone)"
    return None


def _runtime(value: Any) -> str | None:
    if isinstance(value, str) and value not in function_runtimes():
        return f"{value!r} is not a runtime Google lists for new functions: {', '.join(sorted(function_runtimes()))}"
    return None


def _role(value: Any) -> str | None:
    if isinstance(value, str) and value not in predefined_roles() and not CUSTOM_ROLE.fullmatch(value):
        return f"{value!r} is neither a predefined role (data/predefined-roles.txt) nor a custom role's full name"
    return None


# (resource type, plan path with [] for list items) -> check
PATH_RULES: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("gcp:pubsub/subscription:Subscription", "ackDeadlineSeconds"): _between(
        10, 600, "Subscription.ackDeadlineSeconds: the custom deadline is 10 to 600 seconds"
    ),
    ("gcp:pubsub/subscription:Subscription", "deadLetterPolicy.maxDeliveryAttempts"): _between(
        5, 100, "DeadLetterPolicy.maxDeliveryAttempts: between 5 and 100"
    ),
    ("gcp:cloudfunctionsv2/function:Function", "serviceConfig.timeoutSeconds"): _between(
        1, 540, "an event-driven function's timeout is at most 540 s"
    ),
    ("gcp:cloudfunctionsv2/function:Function", "buildConfig.runtime"): _runtime,
    ("gcp:monitoring/alertPolicy:AlertPolicy", "documentation.links[].displayName"): _at_most_chars(
        63, "Link.displayName must not be empty or exceed 63 characters"
    ),
    ("gcp:monitoring/alertPolicy:AlertPolicy", "documentation.subject"): _at_most_chars(
        255, "Documentation.subject: 255 bytes", nonempty=False
    ),
    ("gcp:serviceaccount/account:Account", "accountId"): _account_id,
    ("gcp:cloudscheduler/job:Job", "timeZone"): _time_zone,
}


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(plan path, key, value) of every scalar, lists marked with []."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves_of(item, f"{path}.{key}" if path else key, key)
    else:
        yield path, path.rsplit(".", 1)[-1], value


def _leaves_of(item: Any, path: str, key: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(item, list):
        for entry in item:
            yield from _leaves_of(entry, f"{path}[]", key)
    elif isinstance(item, dict):
        yield from _leaves(item, path)
    else:
        yield path, key, item


def _args_class(type_token: str):
    """pulumi-gcp's typed Args of a resource type: gcp:pubsub/subscription:Subscription -> pubsub.SubscriptionArgs."""
    _, module_path, name = type_token.split(":")
    module = importlib.import_module(f"pulumi_gcp.{module_path.split('/')[0]}")
    return getattr(module, f"{name}Args", None)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


@cache
def required_inputs(type_token: str) -> frozenset[str]:
    """The inputs pulumi-gcp's Args take without a default, in the engine's camelCase."""
    args = _args_class(type_token)
    if args is None:
        return frozenset()
    parameters = inspect.signature(args.__init__).parameters.values()
    return frozenset(
        _camel(p.name)
        for p in parameters
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY
    )


def check_values(resources) -> list[Finding]:
    findings: list[Finding] = []
    for resource in resources:
        if not resource.custom or resource.type.startswith("pulumi:") or resource.type in NOT_GOOGLE_APIS:
            continue
        inputs = dict(resource.inputs)
        for missing in sorted(required_inputs(resource.type) - set(inputs)):
            findings.append(Finding(resource.name, missing, "required by pulumi-gcp's Args, and missing"))
        if resource.type == "gcp:monitoring/dashboard:Dashboard" and isinstance(inputs.get("dashboardJson"), str):
            inputs.update(json.loads(inputs.pop("dashboardJson")))
        for path, key, value in _leaves(inputs):
            problem = None
            if key in DURATION_KEYS and isinstance(value, str) and not (key == "ttl" and value == ""):
                if not DURATION.fullmatch(value):
                    problem = f"{value!r} is not a duration (seconds with up to 9 decimals and an 's', e.g. '600s')"
            elif key == "role":
                problem = _role(value)
            else:
                rule = PATH_RULES.get((resource.type, path))
                problem = rule(value) if rule is not None else None
            if problem:
                findings.append(Finding(resource.name, path, problem))
    return findings
