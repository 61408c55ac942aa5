"""`phase3ops`: the one command line for the pipeline's operators.

Exit codes follow the checks' convention: 0 clean, 1 findings, 2 could not
check (bad spec, missing setting, unreachable service).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from phase3ops.cloud import SettingError
from phase3ops.spec.documents import SpecError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _demo(args: argparse.Namespace) -> int:
    from phase3ops.demo import run_demo
    from phase3ops.spec.pipeline import load_pipeline_spec

    spec = load_pipeline_spec(args.pipeline)
    repo_root = Path(spec.source).resolve().parent
    return run_demo(spec, repo_root, Path(args.run_dir), sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phase3ops", description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", help="pipeline spec (default: $PHASE3OPS_PIPELINE or the nearest pipeline.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="deliver one game date's completions (with duplicates) to the orchestrator on the emulators")
    demo.add_argument("--run-dir", default=".phase3ops/demo", help="where emulator and function logs go")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    # google-api-core warns on every import that Python 3.11 support ends in
    # 2027; operators should not read that above every report.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
