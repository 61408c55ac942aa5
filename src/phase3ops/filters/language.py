"""Filters, parsed and checked offline: a typo fails `validate` instead of an alert that never fires.

A rule carries filters in two languages:

* the Cloud Logging query language, in `logMetric.filter` and
  `conditions[].logMatch.filter`
  (https://cloud.google.com/logging/docs/view/logging-query-language, shaped
  after AIP-160, https://google.aip.dev/160);
* the Cloud Monitoring filter language, in `conditions[].threshold.filter` and
  `conditions[].absence.filter`, ANDed into the metric filter the rule builds
  (https://cloud.google.com/monitoring/api/v3/filters).

Both are read by one recursive-descent parser whose boolean grammar is
AIP-160's; the two dialects differ in what a restriction may be:

    expression  := sequence { "AND" sequence }        lowest precedence
    sequence    := factor { factor }                  juxtaposition is AND
    factor      := term { "OR" term }                 OR binds tighter than AND
    term        := ( "NOT" | "-" ) term | simple      NOT binds tightest
    simple      := "(" expression ")" | restriction

    Logging     restriction := comparable [ OP argument ]
                OP          := = != < <= > >= : =~ !~
                comparable  := member | function
                argument    := comparable | "(" expression ")"   a value list: ("a" OR "b")
                member      := part { "." part }     a part is a word or a "quoted string"
                function    := member "(" [ argument { "," argument } ] ")"
                A bare comparable is a global restriction (a search over every
                field); `--` starts a comment that runs to the end of the line.

    Monitoring  restriction := selector OP value  (no bare values, no comments, no "-")
                selector    := metric.type | metric.label(s).KEY | resource.type
                               | resource.label(s).KEY | project | group.id
                               | metadata.system_labels.KEY | metadata.user_labels.KEY
                OP          := = != and, on label values only, < <= > >= :
                value       := member | starts_with(..) | ends_with(..) | has_substring(..)
                               | one_of(..) | monitoring.regex.full_match(..)

AND, OR and NOT are operators only in upper case (in Logging a lower-case
`and` is a search for the word "and"). Strings are double-quoted with
backslash escapes.

After parsing, the names are checked against what Google defines: the
LogEntry fields and severities, the Monitoring selectors and functions, and
the monitored resource types (and their labels) this project can log or
measure. Problems say where they are as "at character N" (1-based, counted
in the filter text as YAML delivers it) and quote the offending fragment.

Any text at all gives problems, never an exception: a filter longer than
MAX_FILTER_CHARS, or nested (parentheses, NOT, function calls) deeper than
MAX_NESTING, is a problem at the character where it goes too far.

The alert and dashboard lints run all of this over their specs; the names
checked against live in `vocabulary`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from phase3ops.filters.vocabulary import (
    ANY_KEY,
    ANY_PATH,
    LOG_ENTRY_FIELDS,
    LOGGING_FUNCTIONS,
    MAX_FILTER_CHARS,
    MAX_NESTING,
    MONITORED_RESOURCES,
    MONITORING_FUNCTIONS,
    MONITORING_SELECTORS,
    SEVERITIES,
    Arity,
    FieldTree,
)
from phase3ops.input_bounds import REASON_CHARS, capped

_KEYWORDS = ("AND", "OR", "NOT")
_EQUALITY = ("=", "!=")


# ---------------------------------------------------------------------------
# Problems


class FilterSyntaxError(ValueError):
    """The filter does not parse; `offset` is 0-based, the message counts from 1."""

    def __init__(self, offset: int, message: str):
        self.offset = offset
        self.message = capped(message, REASON_CHARS)  # messages quote fragments of the filter, which may be huge
        super().__init__(f"at character {offset + 1}: {self.message}")


@dataclass(frozen=True)
class FilterProblem:
    offset: int  # 0-based in the filter text
    message: str

    def __str__(self) -> str:
        return f"at character {self.offset + 1}: {capped(self.message, REASON_CHARS)}"


def _quoted(fragment: str) -> str:
    return fragment if fragment.startswith('"') else f'"{fragment}"'


def _did_you_mean(word: str, candidates: Any, separator: str = "; ") -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f'{separator}did you mean "{close[0]}"?' if close else ""


# ---------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Part:
    """One dotted component of a word: `labels."a.b/c"` has the parts labels and a.b/c (quoted)."""

    text: str
    quoted: bool


_TEXT, _OPERATOR, _OPEN, _CLOSE, _COMMA, _MINUS, _END = "text", "operator", "(", ")", ",", "-", "end"


@dataclass(frozen=True)
class Token:
    kind: str  # _TEXT (a word or string), _OPERATOR, _OPEN, _CLOSE, _COMMA, _MINUS or _END
    source: str  # as written
    offset: int
    parts: tuple[Part, ...] = ()

    @property
    def end(self) -> int:
        return self.offset + len(self.source)

    def is_keyword(self, *words: str) -> bool:
        return self.kind == _TEXT and self.source in words


_TYPOGRAPHIC_QUOTES = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f"  # ‘ ’ ‚ ‛ “ ” „ ‟: word processors' quotes
_UNQUOTED_PART = re.compile(rf'[^\s()"=<>:!,~.{_TYPOGRAPHIC_QUOTES}]+')
_QUOTED_PART = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPERATOR_TEXT = re.compile(r"!=|<=|>=|=~|!~|[=<>:]")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


def _tokens(text: str, comments: bool) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return tokens + [Token(_END, "", len(text))]
        char = text[position]
        if comments and text.startswith("--", position):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end
            continue
        if char in "(),":
            tokens.append(Token({"(": _OPEN, ")": _CLOSE, ",": _COMMA}[char], char, position))
            position += 1
        elif char == "-":
            # Logging's NOT; a value may not start with it unquoted, so it never begins a word.
            tokens.append(Token(_MINUS, char, position))
            position += 1
        elif match := _OPERATOR_TEXT.match(text, position):
            tokens.append(Token(_OPERATOR, match.group(), position))
            position = match.end()
        elif char == '"' or _UNQUOTED_PART.match(text, position):
            token = _word(text, position)
            tokens.append(token)
            position = token.end
        elif char in _TYPOGRAPHIC_QUOTES:
            raise FilterSyntaxError(
                position, f'"{char}" is a typographic quote: strings take straight double quotes (")'
            )
        else:
            raise FilterSyntaxError(position, f'unexpected character "{char}"')


def _word(text: str, start: int) -> Token:
    """A member or value: dotted parts, each unquoted or a quoted string (`labels."a/b".c`, `"x"`, `0.25`)."""
    parts = []
    position = start
    while True:
        if text[position] == '"':
            match = _QUOTED_PART.match(text, position)
            if not match:
                fragment = text[position : position + 24]
                raise FilterSyntaxError(position, f"unbalanced quote: the string {fragment!r} is never closed")
            parts.append(Part(_unescape(match.group()[1:-1]), quoted=True))
        else:
            match = _UNQUOTED_PART.match(text, position)
            # Callers and the loop below only come here where an unquoted part starts.
            assert match is not None
            parts.append(Part(match.group(), quoted=False))
        position = match.end()
        following = position + 1
        if (
            text.startswith(".", position)
            and following < len(text)
            and (text[following] == '"' or _UNQUOTED_PART.match(text, following))
        ):
            position = following
            continue
        return Token(_TEXT, text[start:position], start, tuple(parts))


# ---------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class Literal:
    """A value as written: a quoted string, a word or a number."""

    source: str
    offset: int
    parts: tuple[Part, ...]

    @property
    def value(self) -> str:
        """The string a single-part value stands for (quotes and escapes removed)."""
        return self.parts[0].text if len(self.parts) == 1 else self.source

    @property
    def is_string(self) -> bool:
        return len(self.parts) == 1 and self.parts[0].quoted

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class FieldPath:
    source: str
    offset: int
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class Call:
    name: str
    arguments: tuple[Node, ...]
    offset: int

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(str, self.arguments))})"


@dataclass(frozen=True)
class Comparison:
    field: FieldPath | Call
    operator: str
    value: Node  # Literal, Call, or in Logging a value list (And/Or/Not of Global)
    offset: int

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{self.value}"


@dataclass(frozen=True)
class Global:
    """A bare value in Logging: matches entries that have it in any field."""

    value: Literal

    @property
    def offset(self) -> int:
        return self.value.offset

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    offset: int

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.items)) + ")"


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    offset: int

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.items)) + ")"


@dataclass(frozen=True)
class Not:
    item: Node
    offset: int

    def __str__(self) -> str:
        return f"NOT {self.item}"


Node = Literal | FieldPath | Call | Comparison | Global | And | Or | Not


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, (And, Or)):
        for item in node.items:
            yield from _walk(item)
    elif isinstance(node, Not):
        yield from _walk(node.item)
    elif isinstance(node, Comparison):
        yield from _walk(node.field)
        yield from _walk(node.value)
    elif isinstance(node, Call):
        for argument in node.arguments:
            yield from _walk(argument)
    elif isinstance(node, Global):
        yield from _walk(node.value)


def _conjuncts(node: Node) -> list[Node]:
    """The restrictions every match must satisfy: the items of a top-level AND."""
    return [c for item in node.items for c in _conjuncts(item)] if isinstance(node, And) else [node]


# ---------------------------------------------------------------------------
# Parsing


class _Parser:
    """The boolean grammar both languages share; a dialect says what a restriction is."""

    minus_means_not = False
    comments = False

    def __init__(self, text: str):
        if len(text) > MAX_FILTER_CHARS:
            message = f"the filter is {len(text):,} characters long; at most {MAX_FILTER_CHARS:,} are read (no filter can deploy that long)"
            raise FilterSyntaxError(MAX_FILTER_CHARS, message)
        self.tokens = _tokens(text, self.comments)
        self.index = 0
        self.depth = 0  # how many parentheses, NOTs and calls enclose the current token
        self.notes: list[FilterProblem] = []  # legal but suspicious, found while parsing
        self._parenthesised: set[int] = set()  # ids of nodes written inside ( )

    def peek(self) -> Token:
        return self.tokens[min(self.index, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def previous(self) -> Token | None:
        return self.tokens[self.index - 1] if self.index else None

    def parse(self) -> Node:
        if self.peek().kind == _END:
            raise FilterSyntaxError(0, "the filter is empty")
        node = self.expression()
        token = self.peek()
        if token.kind == _CLOSE:
            raise FilterSyntaxError(token.offset, 'unbalanced parenthesis: this ")" closes nothing')
        if token.kind != _END:
            raise self.unexpected(token)
        return node

    def expression(self) -> Node:
        items = [self.sequence()]
        while self.peek().is_keyword("AND"):
            self.take()
            items.append(self.sequence())
        return self.combine(And, items)

    def sequence(self) -> Node:
        items = [self.factor()]
        while self.starts_term(self.peek()):
            items.append(self.factor())
        return self.combine(And, items)

    def factor(self) -> Node:
        items = [self.term()]
        while self.peek().is_keyword("OR"):
            self.take()
            items.append(self.term())
        return self.combine(Or, items)

    def term(self) -> Node:
        token = self.peek()
        if token.is_keyword("NOT") or (token.kind == _MINUS and self.minus_means_not):
            self.take()
            self.descend(token)
            node = Not(self.term(), token.offset)
            self.depth -= 1
            return node
        return self.simple()

    def descend(self, token: Token) -> None:
        """Enter one more level of nesting, refusing the level past MAX_NESTING (each level recurses)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FilterSyntaxError(
                token.offset,
                f"nested more than {MAX_NESTING} levels deep (parentheses, NOT and function calls inside each other)",
            )

    def restriction(self) -> Node:
        raise NotImplementedError  # each dialect's parser says what a restriction is

    def simple(self) -> Node:
        token = self.peek()
        before = self.previous()
        if token.kind == _OPEN:
            return self.group()
        if token.kind == _TEXT and not token.is_keyword(*_KEYWORDS):
            return self.restriction()
        if token.kind in (_END, _CLOSE) and before is not None and before.kind == _OPEN:
            raise self.unclosed(before) if token.kind == _END else FilterSyntaxError(before.offset, "empty parentheses")
        if token.kind in (_END, _CLOSE) and before is not None:
            raise FilterSyntaxError(before.offset, f'"{before.source}" has nothing on its right')
        if token.is_keyword("AND", "OR"):
            if before is not None and (before.is_keyword(*_KEYWORDS) or before.kind == _MINUS):
                pair = f"{before.source} {token.source}"
                raise FilterSyntaxError(token.offset, f'"{pair}": "{token.source}" needs a restriction on each side')
            raise FilterSyntaxError(token.offset, f'"{token.source}" has nothing on its left')
        if token.kind == _OPERATOR:
            raise FilterSyntaxError(token.offset, f'"{token.source}" has no field on its left')
        raise self.unexpected(token)

    def group(self) -> Node:
        opening = self.take()
        self.descend(opening)
        node = self.expression()
        self.depth -= 1
        closing = self.peek()
        if closing.kind == _CLOSE:
            self.take()
            self._parenthesised.add(id(node))
            return node
        if closing.kind == _END:
            raise self.unclosed(opening)
        raise self.unexpected(closing)

    def starts_term(self, token: Token) -> bool:
        if token.kind == _TEXT:
            return not token.is_keyword("AND", "OR")
        return token.kind == _OPEN or (token.kind == _MINUS and self.minus_means_not)

    def combine(self, kind: type, items: list[Node]) -> Node:
        return items[0] if len(items) == 1 else kind(tuple(items), items[0].offset)

    def comparable(self) -> Literal | Call:
        """A word, or a function call when "(" follows the name with no space."""
        token = self.take()
        opening = self.peek()
        if opening.kind != _OPEN or opening.offset != token.end or token.parts[-1].quoted:
            return Literal(token.source, token.offset, token.parts)
        self.take()
        arguments: list[Node] = []
        if self.peek().kind == _CLOSE:
            self.take()
            return Call(token.source, (), token.offset)
        self.descend(opening)
        while True:
            arguments.append(self.function_argument(token))
            separator = self.take()
            if separator.kind == _CLOSE:
                self.depth -= 1
                return Call(token.source, tuple(arguments), token.offset)
            if separator.kind == _END:
                raise self.unclosed(opening)
            if separator.kind != _COMMA:
                raise self.unexpected(separator)

    def function_argument(self, name: Token) -> Node:
        token = self.peek()
        if token.kind == _MINUS:
            return self.negative_number()
        if token.kind == _TEXT and not token.is_keyword(*_KEYWORDS):
            return self.comparable()
        found = "end of filter" if token.kind == _END else f'"{token.source}"'
        raise FilterSyntaxError(token.offset, f"expected an argument of {name.source}(), found {found}")

    def negative_number(self) -> Literal:
        minus = self.take()
        number = self.peek()
        if number.kind == _TEXT and number.offset == minus.end and _NUMBER.fullmatch(number.source):
            self.take()
            return Literal("-" + number.source, minus.offset, (Part("-" + number.source, False),))
        raise FilterSyntaxError(minus.offset, 'a value that starts with "-" must be quoted')

    def unclosed(self, opening: Token) -> FilterSyntaxError:
        return FilterSyntaxError(opening.offset, 'unbalanced parenthesis: "(" is never closed')

    def unexpected(self, token: Token) -> FilterSyntaxError:
        if token.kind == _END:
            return FilterSyntaxError(token.offset, "unexpected end of filter")
        if token.kind == _MINUS and not self.minus_means_not:
            if self.peek_after(token).kind == _MINUS:
                return FilterSyntaxError(
                    token.offset, '"--" comments are for Logging queries; a Monitoring filter has none'
                )
            return FilterSyntaxError(token.offset, '"-" negates only in Logging queries: write NOT')
        before = self.previous()
        after = f" after {_quoted(before.source)}" if before is not None else ""
        return FilterSyntaxError(token.offset, f"unexpected {_quoted(token.source)}{after}")

    def peek_after(self, token: Token) -> Token:
        following = self.tokens.index(token) + 1
        return self.tokens[min(following, len(self.tokens) - 1)]

    def expected_value(self, operator: Token) -> FilterSyntaxError:
        token = self.peek()
        found = "end of filter" if token.kind == _END else f'"{token.source}"'
        where = operator.offset if token.kind == _END else token.offset
        return FilterSyntaxError(where, f'expected a value after "{operator.source}", found {found}')


class _LoggingParser(_Parser):
    minus_means_not = True
    comments = True

    def restriction(self) -> Node:
        left = self.comparable()
        if self.peek().kind != _OPERATOR:
            return Global(left) if isinstance(left, Literal) else left
        operator = self.take()
        if isinstance(left, Literal) and left.is_string:
            raise FilterSyntaxError(
                left.offset, f'the left of "{operator.source}" must be a field, not the string {left.source}'
            )
        field = (
            left if isinstance(left, Call) else FieldPath(left.source, left.offset, tuple(p.text for p in left.parts))
        )
        return Comparison(field, operator.source, self.argument(operator), left.offset)

    def argument(self, operator: Token) -> Node:
        token = self.peek()
        if token.kind == _OPEN:
            values = self.group()
            for node in _walk(values):
                if isinstance(node, Comparison):
                    raise FilterSyntaxError(
                        node.offset, f'a value list after "{operator.source}" holds values, not comparisons: "{node}"'
                    )
            return values
        if token.kind == _MINUS:
            return self.negative_number()
        if token.kind == _TEXT and not token.is_keyword(*_KEYWORDS):
            return self.comparable()
        raise self.expected_value(operator)


class _MonitoringParser(_Parser):
    def restriction(self) -> Node:
        left = self.comparable()
        if isinstance(left, Call):
            raise FilterSyntaxError(left.offset, f"a comparison starts with a selector, not a function: {left.name}()")
        operator = self.peek()
        if operator.kind != _OPERATOR:
            if left.source.upper() in _KEYWORDS:
                word = left.source
                raise FilterSyntaxError(
                    left.offset, f'"{word}" is not an operator: write {word.upper()} (operators are upper case)'
                )
            raise FilterSyntaxError(
                left.offset,
                f'"{left.source}" is not a comparison: a Monitoring filter compares selectors (selector = "value")',
            )
        self.take()
        field = FieldPath(left.source, left.offset, tuple(p.text for p in left.parts))
        return Comparison(field, operator.source, self.argument(operator), left.offset)

    def argument(self, operator: Token) -> Node:
        token = self.peek()
        if token.kind == _MINUS:
            return self.negative_number()
        if token.kind == _TEXT and not token.is_keyword(*_KEYWORDS):
            return self.comparable()
        raise self.expected_value(operator)

    def combine(self, kind: type, items: list[Node]) -> Node:
        # Monitoring's docs do not say whether AND or OR binds tighter, so a
        # filter that mixes them unparenthesised means whatever the backend
        # decides: ask for the parentheses.
        if kind is And and len(items) > 1:
            for item in items:
                if isinstance(item, Or) and id(item) not in self._parenthesised:
                    self.notes.append(
                        FilterProblem(
                            item.offset,
                            f"OR and AND are mixed without parentheses (around {' OR '.join(map(str, item.items))}), "
                            "and Cloud Monitoring does not document which binds tighter: add them",
                        )
                    )
        return super().combine(kind, items)


# The trees are immutable and the same few filters are read over and over (every lint, every
# evaluation against a time series or a log entry): parse each text once.
@lru_cache(maxsize=4096)
def parse_logging_filter(text: str) -> Node:
    """The Logging query as a tree; raises FilterSyntaxError."""
    return _parse(_LoggingParser, text)[0]


@lru_cache(maxsize=4096)
def parse_monitoring_filter(text: str) -> Node:
    """The Monitoring filter as a tree; raises FilterSyntaxError."""
    return _parse(_MonitoringParser, text)[0]


def _parse(parser_type: type[_Parser], text: str) -> tuple[Node, list[FilterProblem]]:
    """The tree of `text` and the parser's notes; raises FilterSyntaxError, never anything else."""
    try:
        parser = parser_type(text)
        return parser.parse(), parser.notes
    except RecursionError:  # a last resort: MAX_NESTING keeps the parser far below the interpreter's limit
        raise FilterSyntaxError(0, "nested too deeply to read") from None


# ---------------------------------------------------------------------------
# Checking the names


def _value_leaves(node: Node) -> list[Literal]:
    """The literal values of a comparison's right side (a value or a value list)."""
    if isinstance(node, Literal):
        return [node]
    if isinstance(node, Global):
        return [node.value]
    if isinstance(node, (And, Or)):
        return [leaf for item in node.items for leaf in _value_leaves(item)]
    if isinstance(node, Not):
        return _value_leaves(node.item)
    return []


def _resource_type_problem(value: str, offset: int) -> FilterProblem | None:
    if value in MONITORED_RESOURCES:
        return None
    hint = _did_you_mean(value, MONITORED_RESOURCES, separator="")
    hint = (
        f" ({hint})" if hint else " (if it is real, add it to MONITORED_RESOURCES in phase3ops/filters/vocabulary.py)"
    )
    return FilterProblem(offset, f'resource.type "{value}" is not a known monitored resource type{hint}')


def resource_type_problems(resource_type: str) -> list[str]:
    """A resource type named on its own (a rule's `resourceType`)."""
    problem = _resource_type_problem(resource_type, 0)
    return [problem.message] if problem else []


def _log_field_problem(path: FieldPath) -> FilterProblem | None:
    root = path.parts[0]
    if root not in LOG_ENTRY_FIELDS:
        fields = ", ".join(LOG_ENTRY_FIELDS)
        return FilterProblem(
            path.offset, f'unknown field "{root}" (LogEntry fields: {fields}{_did_you_mean(root, LOG_ENTRY_FIELDS)})'
        )
    below: FieldTree = LOG_ENTRY_FIELDS[root]
    for depth, part in enumerate(path.parts[1:], start=1):
        known_so_far = ".".join(path.parts[:depth])
        if below == ANY_PATH:
            return None
        if below is None:
            return FilterProblem(path.offset, f'unknown field "{path.dotted}" ({known_so_far} has no fields)')
        assert isinstance(below, dict)  # ANY_PATH is the only string in the tree
        if part not in below:
            fields = ", ".join(below)
            hint = _did_you_mean(
                path.dotted, [".".join([*path.parts[:depth], f, *path.parts[depth + 1 :]]) for f in below]
            )
            return FilterProblem(path.offset, f'unknown field "{path.dotted}" ({known_so_far} fields: {fields}{hint})')
        below = below[part]
    return None


def _function_problems(
    call: Call, functions: dict[str, Arity], language: str, case_sensitive: bool
) -> list[FilterProblem]:
    name = call.name if case_sensitive else call.name.lower()
    if name not in functions:
        if language == "Logging" and call.name in MONITORING_FUNCTIONS:
            message = f'{call.name}() is a Cloud Monitoring filter function, not a Logging one (use =~ "regex" or :)'
            return [FilterProblem(call.offset, message)]
        known = ", ".join(f"{f}()" for f in functions)
        hint = _did_you_mean(name, functions)
        return [FilterProblem(call.offset, f'unknown function "{call.name}()" ({language} functions: {known}{hint})')]
    arity = functions[name]
    if not arity.accepts(len(call.arguments)):
        return [
            FilterProblem(call.offset, f"{call.name}() takes {arity.describe()}, got {len(call.arguments)}: {call}")
        ]
    return []


def _search_fields(call: Call) -> tuple[int, ...]:
    return (
        (0,)
        if call.name.lower() == "search" and len(call.arguments) == 2
        else LOGGING_FUNCTIONS[call.name.lower()].field_arguments
    )


def _pinned_resource_types(node: Node, also: str | None = None) -> set[str] | None:
    """The resource types every match must have, from `resource.type = ...` restrictions ANDed at the top."""
    pinned = {also} if also else None
    for conjunct in _conjuncts(node):
        if not (
            isinstance(conjunct, Comparison) and conjunct.operator == "=" and isinstance(conjunct.field, FieldPath)
        ):
            continue
        if conjunct.field.parts != ("resource", "type"):
            continue
        value = conjunct.value
        if isinstance(value, Call) and value.name == "one_of":
            types = {leaf.value for a in value.arguments for leaf in _value_leaves(a)}
        elif isinstance(value, Literal) or (isinstance(value, Or) and all(isinstance(i, Global) for i in value.items)):
            types = {leaf.value for leaf in _value_leaves(value)}
        else:
            continue
        pinned = types if pinned is None else pinned & types
    return pinned


def _resource_label_problems(node: Node, label_words: tuple[str, ...], also: str | None = None) -> list[FilterProblem]:
    """`resource.labels.KEY` must be a label of the resource type the filter pins (when every pinned type's labels are known)."""
    pinned = _pinned_resource_types(node, also)
    if not pinned:
        return []
    label_sets = [names for t in pinned if (names := MONITORED_RESOURCES.get(t)) is not None]
    if len(label_sets) < len(pinned):
        return []
    labels: set[str] = set().union(*label_sets)
    problems = []
    for found in _walk(node):
        if not (isinstance(found, Comparison) and isinstance(found.field, FieldPath)):
            continue
        parts = found.field.parts
        if len(parts) == 3 and parts[0] == "resource" and parts[1] in label_words and parts[2] not in labels:
            owner = " or ".join(sorted(pinned))
            known = ", ".join(sorted(labels))
            hint = _did_you_mean(parts[2], labels)
            problems.append(
                FilterProblem(found.offset, f'"{parts[2]}" is not a label of {owner} (its labels: {known}{hint})')
            )
    return problems


def _logging_problems(text: str) -> list[FilterProblem]:
    try:
        tree = parse_logging_filter(text)
    except FilterSyntaxError as error:
        return [FilterProblem(error.offset, error.message)]
    problems: list[FilterProblem] = []
    for node in _walk(tree):
        if isinstance(node, Comparison) and isinstance(node.field, FieldPath):
            field_problem = _log_field_problem(node.field)
            if field_problem:
                problems.append(field_problem)
            elif node.field.parts == ("severity",) and node.operator not in ("=~", "!~"):
                problems += _severity_problems(node.value)
            elif node.field.parts == ("resource", "type") and node.operator in _EQUALITY:
                problems += [
                    p for leaf in _value_leaves(node.value) if (p := _resource_type_problem(leaf.value, leaf.offset))
                ]
        elif isinstance(node, Call):
            found = _function_problems(node, LOGGING_FUNCTIONS, "Logging", case_sensitive=False)
            problems += found
            if not found:
                for position in _search_fields(node):
                    argument = node.arguments[position]
                    if isinstance(argument, Literal) and not argument.is_string:
                        path = FieldPath(argument.source, argument.offset, tuple(p.text for p in argument.parts))
                        problems += [p for p in [_log_field_problem(path)] if p]
        elif isinstance(node, Global) and not node.value.is_string and node.value.source.upper() in _KEYWORDS:
            word = node.value.source
            message = f'"{word}" is a search for the word {word!r}, not an operator: write {word.upper()} (operators are upper case)'
            problems.append(FilterProblem(node.offset, message))
    problems += _resource_label_problems(tree, ("labels",))
    return problems


def _severity_problems(value: Node) -> list[FilterProblem]:
    problems = []
    for leaf in _value_leaves(value):
        name = leaf.value
        if name.upper() in SEVERITIES or (name.isdigit() and int(name) in SEVERITIES.values()):
            continue
        known = ", ".join(SEVERITIES)
        problems.append(
            FilterProblem(leaf.offset, f'"{name}" is not a severity ({known}{_did_you_mean(name.upper(), SEVERITIES)})')
        )
    return problems


def _selector_problem(path: FieldPath) -> tuple[str | None, FilterProblem | None]:
    """What the selector names ("type", "label", ...) or why it names nothing."""
    for pattern in MONITORING_SELECTORS:
        expected = pattern.split(".")
        if len(expected) == len(path.parts) and all(e in (ANY_KEY, p) for e, p in zip(expected, path.parts)):
            return ("label" if expected[-1] == ANY_KEY else expected[-1]), None
    key = path.parts[-1]
    candidates = [s.replace(ANY_KEY, key) for s in MONITORING_SELECTORS]
    known = ", ".join(MONITORING_SELECTORS)
    hint = _did_you_mean(path.dotted, candidates)
    return None, FilterProblem(path.offset, f'unknown selector "{path.dotted}" (selectors: {known}{hint})')


def _monitoring_comparison_problems(comparison: Comparison) -> list[FilterProblem]:
    field = comparison.field
    assert isinstance(field, FieldPath)  # the Monitoring parser allows nothing else
    selects, problem = _selector_problem(field)
    if problem:
        return [problem]
    operator = comparison.operator
    if operator in ("=~", "!~"):
        return [
            FilterProblem(
                comparison.offset,
                f'"{operator}" is a Logging operator; a Monitoring filter writes {field.dotted} '
                f'{"=" if operator == "=~" else "!="} monitoring.regex.full_match("...")',
            )
        ]
    if selects != "label" and operator not in _EQUALITY:
        message = f'{field.dotted} takes = or !=, not "{operator}" (only label values compare with < <= > >= :)'
        return [FilterProblem(comparison.offset, message)]
    value = comparison.value
    if isinstance(value, Call):
        found = _function_problems(value, MONITORING_FUNCTIONS, "Monitoring", case_sensitive=True)
        if not found and operator not in _EQUALITY:
            found = [FilterProblem(value.offset, f'{value.name}() is compared with = or !=, not "{operator}"')]
        if found:
            return found
        for argument in value.arguments:
            if not isinstance(argument, Literal):
                return [FilterProblem(argument.offset, f"{value.name}() takes values, not {argument}")]
    if field.parts == ("resource", "type"):
        if isinstance(value, Literal):
            return [p for p in [_resource_type_problem(value.value, value.offset)] if p]
        if isinstance(value, Call) and value.name == "one_of":
            return [
                p
                for a in value.arguments
                if isinstance(a, Literal) and (p := _resource_type_problem(a.value, a.offset))
            ]
    return []


def _monitoring_problems(text: str, resource_type: str | None = None) -> list[FilterProblem]:
    try:
        tree, notes = _parse(_MonitoringParser, text)
    except FilterSyntaxError as error:
        return [FilterProblem(error.offset, error.message)]
    problems = list(notes)
    for node in _walk(tree):
        if isinstance(node, Comparison):
            problems += _monitoring_comparison_problems(node)
    problems += _resource_label_problems(
        tree, ("labels", "label"), also=resource_type if resource_type in MONITORED_RESOURCES else None
    )
    return problems


def logging_filter_problems(text: str) -> list[str]:
    """Why the Logging query is wrong, each as "at character N: what"; empty when it is fine."""
    return [str(p) for p in _logging_problems(text)]


def monitoring_filter_problems(text: str, resource_type: str | None = None) -> list[str]:
    """Why the Monitoring filter is wrong; `resource_type` is the one the rest of the filter pins, if any."""
    return [str(p) for p in _monitoring_problems(text, resource_type)]


LOGGING, MONITORING = "Logging", "Monitoring"
_RESOURCE_TYPE = re.compile(r'resource\.type\s*=\s*"?([a-z_]+)"?')


def cloud_function_mentions(text: str) -> list[int]:
    """Where a filter says resource.type="cloud_function" (the offsets), which never matches a gen2 function."""
    return [m.start() for m in _RESOURCE_TYPE.finditer(text) if m.group(1) == "cloud_function"]


def gen2_function_hint(functions: list[str]) -> str:
    """What a gen2 function's logs and metrics arrive as, for the messages that refuse cloud_function."""
    return f'resource.type="cloud_run_revision" with resource.labels.service_name="{functions[0] if functions else "<function>"}"'


def filter_problems(text: str, language: str, resource_type: str | None = None) -> list[FilterProblem]:
    """`logging_filter_problems` or `monitoring_filter_problems`, keeping each problem's offset (to find its line)."""
    return _logging_problems(text) if language == LOGGING else _monitoring_problems(text, resource_type)


def pinned_resource_types(text: str, language: str) -> set[str] | None:
    """The resource types every match of the filter must have (None: any, or the filter does not parse)."""
    try:
        tree = parse_logging_filter(text) if language == LOGGING else parse_monitoring_filter(text)
    except FilterSyntaxError:
        return None
    return _pinned_resource_types(tree)


@dataclass(frozen=True)
class LabelRestriction:
    """`resource.labels.KEY = value` (or metric.label.KEY ...) in a filter, and which values it admits."""

    owner: str  # "resource" or "metric"
    key: str
    source: str  # as written, for messages
    offset: int
    values: tuple[str, ...]  # the values named (an exact value, a one_of's values, a prefix ...)
    how: str  # "equals", "starts_with", "ends_with", "has_substring" or "regex"

    def admits(self, name: str) -> bool:
        if self.how == "equals":
            return name in self.values
        if self.how == "starts_with":
            return any(name.startswith(v) for v in self.values)
        if self.how == "ends_with":
            return any(name.endswith(v) for v in self.values)
        if self.how == "has_substring":
            return any(v in name for v in self.values)
        try:
            return any(re.fullmatch(v, name) for v in self.values)
        except re.error:  # RE2 (`\z`, `\pL`) that Python's re cannot read: it may well match
            return True


_HOW = {
    "one_of": "equals",
    "starts_with": "starts_with",
    "ends_with": "ends_with",
    "has_substring": "has_substring",
    "monitoring.regex.full_match": "regex",
}


def label_restrictions(text: str, language: str) -> list[LabelRestriction]:
    """Every positive `resource.label(s).KEY` and `metric.label(s).KEY` restriction whose values can be read.

    Negated restrictions (`!=`, under NOT) say what is excluded, not what is
    named, and are left out; so are filters that do not parse (reported by
    `filter_problems`).
    """
    try:
        tree = parse_logging_filter(text) if language == LOGGING else parse_monitoring_filter(text)
    except FilterSyntaxError:
        return []
    negated = {id(n) for node in _walk(tree) if isinstance(node, Not) for n in _walk(node.item)}
    found = []
    for node in _walk(tree):
        if not (isinstance(node, Comparison) and isinstance(node.field, FieldPath)) or id(node) in negated:
            continue
        parts = node.field.parts
        if len(parts) != 3 or parts[0] not in ("resource", "metric") or parts[1] not in ("labels", "label"):
            continue
        value = node.value
        if node.operator == "=" and isinstance(value, Call) and value.name in _HOW:
            values = tuple(
                leaf.value
                for a in value.arguments[: 1 if value.name != "one_of" else None]
                for leaf in _value_leaves(a)
            )
            how = _HOW[value.name]
        elif node.operator == "=" and not isinstance(value, Call):
            values, how = tuple(leaf.value for leaf in _value_leaves(value)), "equals"
        elif node.operator == ":" and not isinstance(value, Call):
            values, how = tuple(leaf.value for leaf in _value_leaves(value)), "has_substring"
        elif node.operator == "=~" and isinstance(value, Literal):
            values, how = (f".*(?:{value.value}).*",), "regex"
        else:
            continue
        if values:
            found.append(LabelRestriction(parts[0], parts[2], str(node), node.offset, values, how))
    return found
