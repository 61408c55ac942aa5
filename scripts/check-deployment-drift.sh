#!/usr/bin/env bash
# Runbook: deployment drift of a stack (default: $DRIFT_STACK, else prod).
# Exit 0 no drift, 1 drift, 2 the preview itself failed (credentials, config).
#   scripts/check-deployment-drift.sh [--verbose] [--stack S] [--from-file preview.json] [--format markdown]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_phase3ops.sh"
cmd="$(phase3ops_command)" || exit 2
PHASE3OPS_PROG="$0" exec "$cmd" drift "$@"
