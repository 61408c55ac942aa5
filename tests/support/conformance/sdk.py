"""Google's API message definitions from the installed Google Cloud SDK.

The SDK ships every API's apitools-generated message classes under
`<sdk root>/lib/googlecloudsdk/generated_clients/apis/<api>/<version>/`.
They are loaded by file path, with only the SDK's own `apitools` package
registered: putting the SDK's lib/third_party on sys.path would shadow this
environment's google, six and yaml packages.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType

SDK_ROOT_ENV = "CLOUDSDK_ROOT_DIR"


class SdkUnavailable(RuntimeError):
    """No Google Cloud SDK here: the definitions cannot be read."""


@lru_cache(maxsize=1)
def sdk_root() -> Path:
    import os

    explicit = os.environ.get(SDK_ROOT_ENV)
    if explicit:
        return Path(explicit)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SdkUnavailable("the Google Cloud CLI (gcloud) is not on PATH, and $CLOUDSDK_ROOT_DIR is not set")
    result = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SdkUnavailable(f"`gcloud info` did not name the SDK root: {result.stderr.strip()[:300]}")
    return Path(result.stdout.strip())


def _load_by_path(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None
    )
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _apitools(root: Path) -> None:
    third_party = root / "lib" / "third_party"
    try:
        import six  # noqa: F401 - apitools needs it; this environment's copy is preferred
    except ImportError:
        _load_by_path("six", third_party / "six" / "__init__.py")
    _load_by_path("apitools", third_party / "apitools" / "__init__.py", third_party / "apitools")


@cache
def messages(api: str, version: str) -> ModuleType:
    """The `<api>_<version>_messages` module, e.g. messages("monitoring", "v3")."""
    root = sdk_root()
    path = (
        root / "lib" / "googlecloudsdk" / "generated_clients" / "apis" / api / version / f"{api}_{version}_messages.py"
    )
    if not path.is_file():
        raise SdkUnavailable(f"the SDK at {root} has no definitions for {api} {version} ({path})")
    _apitools(root)
    return _load_by_path(f"_phase3ops_sdk_apis.{api}_{version}_messages", path)


def json_fields(message_class) -> dict:
    """{JSON field name: field} of an apitools message class."""
    from apitools.base.py import encoding

    return {
        encoding.GetCustomJsonFieldMapping(message_class, python_name=f.name) or f.name: f
        for f in message_class.all_fields()
    }


def field_kinds() -> ModuleType:
    """apitools' protorpc `messages` module (EnumField, MessageField, ...), from the SDK."""
    _apitools(sdk_root())
    from apitools.base.protorpclite import messages as kinds

    return kinds
