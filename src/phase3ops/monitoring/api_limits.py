"""Limits of the Cloud Monitoring API that specs here must stay within (a longer value fails at `pulumi up`)."""

# The API keeps at most 3 documentation links: the runbook and up to 2 dashboards.
MAX_DOCUMENTATION_LINKS = 3

# Link.displayName "must not be empty or exceed 63 characters" (monitoring v3 Link).
MAX_LINK_DISPLAY_NAME = 63
