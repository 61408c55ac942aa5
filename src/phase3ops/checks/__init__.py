"""The on-call engineer's checks: health, reconciliation, drift. Exit codes: 0 clean, 1 findings, 2 could not check."""

EXIT_CLEAN, EXIT_FINDINGS, EXIT_COULD_NOT_CHECK = 0, 1, 2
