# Sourced by the runbook wrappers: find the phase3ops command of this checkout
# (its .venv), else the one on PATH (the container image).
phase3ops_command() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -x "$root/.venv/bin/phase3ops" ]; then
    echo "$root/.venv/bin/phase3ops"
  elif command -v phase3ops >/dev/null 2>&1; then
    command -v phase3ops
  else
    echo "phase3ops is not installed: run the README's set-up command first" >&2
    return 2
  fi
}
