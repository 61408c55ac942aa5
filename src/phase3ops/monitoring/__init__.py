"""Cloud Monitoring's vocabulary, below alerts, dashboards and checks: durations as the API writes
them, metric names and aggregations, the pipeline's own custom metrics, and the API's limits."""
