"""The plan held against Google's own API definitions, as shipped with the Google Cloud SDK."""
