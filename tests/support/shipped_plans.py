"""The plans of the repository's own stacks, made once per test process.

Planning a stack runs the whole infra program under Pulumi's mocks (seconds
of CPU); a dozen test modules read the same dev and prod plans and none
changes them. Tests that plan a changed copy of the repository still call
`plan_stack` themselves.
"""

from __future__ import annotations

from functools import cache

from phase3ops.plan.plan import plan_stack
from phase3ops.plan.runner import PlanResult
from tests.support.repo_copy import REPO_ROOT


@cache
def shipped_plan(stack: str) -> PlanResult:
    return plan_stack(REPO_ROOT, stack).result
