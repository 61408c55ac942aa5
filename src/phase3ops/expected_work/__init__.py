"""What the schedule owes: the expected-work ledger, and the repairs that re-request missing runs."""
