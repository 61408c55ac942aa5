"""The two filter languages of Google Cloud's observability APIs, parsed and checked offline.

Below alerts and dashboards, which both carry filters: `language` parses the
Cloud Logging query language and the Cloud Monitoring filter language and
finds the problems in a filter; `vocabulary` holds the names Google defines
(LogEntry fields, severities, functions, selectors, monitored resources);
`positions` maps a problem's character back to its line in a YAML file.
"""
