"""Records what each workload process touches, when PHASE3OPS_ACCESS_TRACE names a directory.

Put this directory on PYTHONPATH and Python imports it at start-up in every
process of the local environment (the children inherit the variable). Each
process that is one of the stack's workloads (known by its command line:
the analytics service, the two functions, the scheduled commands) appends
one JSON line per distinct access to <dir>/<pid>.jsonl, as it happens (a
process may be killed):

- BigQuery (the DuckDB warehouse here, same SQL): the datasets it reads and
  writes, from the statements it runs;
- Firestore: the collections of the documents it reads and writes, from the
  gRPC requests its client sends the emulator;
- Pub/Sub: the topics it publishes to and the subscriptions it pulls from.

Nothing of this is in the shipped package: the test that uses it
(tests/integration/test_least_privilege_traced.py) holds the traces
against phase3ops.access's declaration.
"""

from __future__ import annotations

import os

if os.environ.get("PHASE3OPS_ACCESS_TRACE"):
    import importlib.util
    from pathlib import Path

    # Loaded by path: this directory is on PYTHONPATH, the tests package need not be.
    spec = importlib.util.spec_from_file_location("access_tracer", Path(__file__).with_name("access_tracer.py"))
    assert spec is not None and spec.loader is not None
    tracer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tracer)
    tracer.install(os.environ["PHASE3OPS_ACCESS_TRACE"])
