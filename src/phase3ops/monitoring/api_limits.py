"""Limits of the Cloud Monitoring API that specs here must stay within (a longer value fails at `pulumi up`)."""

# The API keeps at most 3 documentation links: the runbook and up to 2 dashboards.
MAX_DOCUMENTATION_LINKS = 3
