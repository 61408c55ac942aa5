#!/usr/bin/env bash
# Runbook: the Phase 3 health check. Exit 0 all checks passed, 1 findings,
# 2 could not check. Plain text (no colour codes) so grep and CI can read it.
#   scripts/phase3_health_check.sh [--verbose] [--days N] [--date YYYY-MM-DD] [--local] [--json]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_phase3ops.sh"
cmd="$(phase3ops_command)" || exit 2
PHASE3OPS_PROG="$0" exec "$cmd" health "$@"
