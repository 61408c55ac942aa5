"""The modules a Python source imports, read from its import statements, never by running it.

The infra program finds the orchestrator function's bundle by following main.py's imports on every
plan, and one process may plan many times (`plan` for each stack, the tests): the same few dozen
files, so each text is parsed once.
"""

from __future__ import annotations

import ast
import functools


@functools.lru_cache(maxsize=1024)
def imported_modules(text: str, filename: str = "<source>") -> frozenset[str]:
    """Every absolute import: `import a.b` gives a.b; `from a import b` gives a and a.b (b may be a
    module). Relative imports are left out. Raises SyntaxError naming `filename`."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(text, filename=filename)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(modules)
