"""What an operator types into an override, checked before anything is read or written.

Every refusal names the argument it is about (`DATE`, `PROCESSOR`,
`--reason`, `--operator`, `--cascade`), so the command line can say
`argument --reason: ...` and exit 2, as argparse does for its own checks.
"""

from __future__ import annotations

import datetime as dt
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from phase3ops.input_bounds import OutOfBounds, quoted
from phase3ops.input_bounds import game_date as bounded_game_date
from phase3ops.spec.pipeline import PipelineSpec, Processor

MAX_REASON_CHARS = 500
MAX_OPERATOR_CHARS = 200
MAX_CASCADE = 30  # following game dates one retrigger may re-send: about two months of a season
# Who ran the override, when --operator is not given: gcloud's account, else the login name.
OPERATOR_ENV = ("CLOUDSDK_CORE_ACCOUNT", "USER")


class BadOverride(ValueError):
    """An argument that can never be carried out; `argument` names it as the command line spells it."""

    def __init__(self, argument: str, reason: str):
        self.argument, self.reason = argument, reason
        super().__init__(f"argument {argument}: {reason}")


@dataclass(frozen=True)
class Operator:
    name: str
    source: str  # --operator | CLOUDSDK_CORE_ACCOUNT | USER


def _text(value: object, argument: str, max_chars: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadOverride(argument, f"must not be empty: {what}")
    text = value.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 in argv arrive as lone surrogates
        raise BadOverride(argument, "is not valid UTF-8 text") from None
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise BadOverride(argument, f"holds control characters: {quoted(text, 60)}")
    if len(text) > max_chars:
        raise BadOverride(argument, f"{len(text)} characters; at most {max_chars}")
    return text


def reason(value: object) -> str:
    """Why the override is made: required, non-empty, at most MAX_REASON_CHARS characters."""
    return _text(
        value, "--reason", MAX_REASON_CHARS, "say why (it is recorded with the override, e.g. the incident or ticket)"
    )


def operator(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Operator:
    """Who makes the override: `--operator`, else $CLOUDSDK_CORE_ACCOUNT (gcloud's account), else $USER."""
    if explicit is not None:
        return Operator(_text(explicit, "--operator", MAX_OPERATOR_CHARS, "who makes the override"), "--operator")
    environ = os.environ if environ is None else environ
    for name in OPERATOR_ENV:
        value = environ.get(name)
        if value and value.strip():
            try:
                return Operator(_text(value, "--operator", MAX_OPERATOR_CHARS, "who makes the override"), name)
            except BadOverride as exc:
                raise BadOverride("--operator", f"${name} {exc.reason}") from None
    raise BadOverride("--operator", f"no operator: pass --operator or set {' or '.join('$' + n for n in OPERATOR_ENV)}")


def game_date(value: object, argument: str = "DATE", today: dt.date | None = None) -> dt.date:
    """A strict YYYY-MM-DD game date between the first NBA game and a year ahead."""
    if isinstance(value, dt.date):
        value = value.isoformat()
    try:
        return bounded_game_date(value, argument, today)
    except OutOfBounds as exc:
        raise BadOverride(argument, exc.reason) from None


def processor(spec: PipelineSpec, value: object) -> Processor:
    """A processor of the spec, by its name, output table or class name."""
    found = spec.resolve_processor(value) if isinstance(value, str) and value.strip() else None
    if found is None:
        raise BadOverride(
            "PROCESSOR", f"unknown processor {quoted(value, 80)}: one of {', '.join(spec.processor_names)}"
        )
    return found


def cascade(value: object) -> int:
    """How many following triggered game dates a retrigger re-sends as well: 0 to MAX_CASCADE."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise BadOverride("--cascade", f"{quoted(value, 40)} is not a whole number") from None
    if not 0 <= value <= MAX_CASCADE:
        raise BadOverride("--cascade", f"{value} must be between 0 and {MAX_CASCADE}")
    return value
