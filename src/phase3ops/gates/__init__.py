"""Data gates: what a ready date's tables must show in the warehouse before Phase 4 is triggered.

measures.py writes the one query that measures a date for all its gates;
evaluate.py judges each gate from that query's row and reports.
"""
