"""The analytics service (Cloud Run `nba-phase3-analytics-processors`) and its five processors."""
