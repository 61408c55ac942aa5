"""How long the offline plan takes, and how it grows with the number of alert rules.

Run: .venv/bin/python bench/plan.py [--rules 10 100 500]

Plans the shipped stack (target: under 2 s), then copies of the repository
with N extra alert rules (each a log-based metric plus a threshold policy,
the heavier kind), and prints seconds and milliseconds per rule side by
side: linear growth shows as a flat per-rule cost.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from phase3ops.plan.plan import plan_stack  # noqa: E402
from tests.support.repo_copy import copy_specs  # noqa: E402

TARGET_SECONDS = 2.0
RULE = """# yaml-language-server: $schema=schema/alert-rule.schema.json
apiVersion: phase3ops/v1
kind: AlertRule
metadata:
  name: bench-rule-{n}
  labels: {{component: analytics, severity: warning}}
spec:
  logMetric:
    name: bench_metric_{n}
    description: bench metric {n}
    filter: resource.type="cloud_run_revision" AND jsonPayload.bench="{n}"
  conditions:
    - threshold:
        metric: log:bench_metric_{n}
        resourceType: cloud_run_revision
        statistic: count
        comparison: greater_than
        value: {n}
        window: 5m
  documentation: {{summary: Bench rule {n}, runbook: docs/runbook.md#orchestrator-errors}}
"""


def timed_plan(repo: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = plan_stack(repo, "dev").result
    return time.perf_counter() - started, len(result.resources)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[10, 100, 500])
    args = parser.parse_args()

    timed_plan(REPO_ROOT)  # imports and first-run set-up are not what we compare
    shipped_seconds, shipped_resources = timed_plan(REPO_ROOT)
    rows = []
    for count in args.rules:
        directory = Path(tempfile.mkdtemp(prefix="bench-plan-"))
        repo = copy_specs(directory)
        for n in range(count):
            (repo / "alerts" / f"bench-rule-{n}.yaml").write_text(RULE.format(n=n))
        seconds, resources = min(timed_plan(repo) for _ in range(2))  # the quieter of two runs
        rows.append((count, resources, seconds))
        shutil.rmtree(directory)

    print(
        f"offline plan of stack dev, shipped specs: {shipped_resources} resources in {shipped_seconds:.2f} s "
        f"(target < {TARGET_SECONDS:.0f} s: {'met' if shipped_seconds < TARGET_SECONDS else 'NOT met'})\n"
    )
    print(f"{'extra rules':>11} {'resources':>10} {'seconds':>8} {'ms per rule added since the previous row':>42}")
    previous_count, previous_seconds = 0, shipped_seconds
    for count, resources, seconds in rows:
        marginal = 1000 * (seconds - previous_seconds) / (count - previous_count)
        print(f"{count:11d} {resources:10d} {seconds:8.2f} {marginal:42.1f}")
        previous_count, previous_seconds = count, seconds
    print("\nlinear growth shows as a flat last column (each rule adds 2 resources and its share of the waiting)")
    return 0 if shipped_seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
