"""Command templates of ``command`` contexts, read as ``/bin/sh`` reads them.

A template names context fields in braces (``cloud start {name} --zone x``). A field's value is
never put into the command's text, where a shell would read it: each placeholder becomes a
reference to an environment variable (``{hostname}`` → ``NVWB_TEMPLATE_HOSTNAME``) set only for
that command, written for the quoting it sits in (``"${V}"`` bare, ``${V}`` inside double quotes,
``'"${V}"'`` inside single quotes). Whatever a value holds (``$(...)``, quotes, ``*``) comes out
as exactly that text. A placeholder where no reference can be quoted (inside backticks,
``${...}`` or ``$'...'``), an unknown placeholder and an unterminated quote are refused when the
context is created.

The same reading finds secrets typed in literally, however they are quoted: an assignment or
``--flag=value`` or ``--flag value`` whose name says secret, an ``Authorization:`` or ``*-Token:``
header, a password in a URL, and the shapes of well-known tokens (``sk-``, ``nvapi-``, ``ghp_``,
``AKIA``...). A value that refers to something (``$TOKEN``, ``$(pass show x)``) is fine.

Standard library only: ``workbench.registry`` checks every template on load.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from workbench.errors import InvalidValueError

PLACEHOLDERS: Final[tuple[str, ...]] = (
    "name",
    "context",
    "hostname",
    "ssh_username",
    "ssh_port",
    "ssh_key_path",
    "workbench_dir",
)
VARIABLE_PREFIX: Final = "NVWB_TEMPLATE_"

_REF: Final = "\x00"  # stands for an expansion inside a word (never typed: fields are one line)
_CMD, _DQ, _SQ, _BT, _PARAM, _ANSI = "command", "dq", "sq", "backticks", "${...}", "$'...'"
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]")
_SPECIAL_PARAMS = set("@*#?-$!0123456789")
_OPERATORS = set(";&|<>")


def variable(placeholder: str) -> str:
    """The environment variable that carries ``{placeholder}``'s value to the command."""
    return VARIABLE_PREFIX + placeholder.upper()


@dataclass(frozen=True)
class Template:
    """A checked template: ``command`` is what ``/bin/sh -c`` runs, with no value in it."""

    source: str
    command: str
    placeholders: tuple[str, ...]

    def environment(self, values: Mapping[str, str]) -> dict[str, str]:
        """The variables that carry this template's values (``values``: by placeholder)."""
        return {variable(name): values[name] for name in self.placeholders}


def parse(text: str, field_name: str, available: Collection[str]) -> Template:
    """Check ``text`` and turn it into a :class:`Template`; ``InvalidValueError`` names the field.

    ``available``: the placeholders this context has values for.
    """
    pieces = _pieces(text, field_name, available)
    scan = _Scan(field_name)
    used: list[str] = []
    for piece in pieces:
        if isinstance(piece, _Placeholder):
            scan.placeholder(piece.name)
            if piece.name not in used:
                used.append(piece.name)
        else:
            scan.feed(piece)
    scan.finish()
    return Template(text, "".join(scan.out), tuple(used))


def literal_secret(command: str) -> str | None:
    """What in ``command`` looks like a secret typed in literally (never the secret itself)."""
    scan = _Scan("command")
    scan.feed(command)
    scan.flush_all()
    words = scan.words
    for index, word in enumerate(words):
        found = _word_secret(word, words[index + 1] if index + 1 < len(words) else None)
        if found:
            return found
    return None


# -- the placeholders ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placeholder:
    name: str


def _pieces(text: str, field_name: str, available: Collection[str]) -> list[str | _Placeholder]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidValueError(
            field_name,
            f"is not a valid template: {exc}",
            hint="write '{{' and '}}' for literal braces",
        ) from exc
    pieces: list[str | _Placeholder] = []
    for literal, name, spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if name is None:
            continue
        if spec or conversion:
            raise InvalidValueError(field_name, f"'{{{name}}}' may not carry a format spec")
        if name not in available:
            known = ", ".join(f"{{{n}}}" for n in PLACEHOLDERS if n in available)
            missing = name in PLACEHOLDERS
            raise InvalidValueError(
                field_name,
                f"uses '{{{name}}}', which "
                + ("this context has no value for" if missing else "is not a placeholder"),
                hint=f"known here: {known}; write '{{{{' for a literal brace",
            )
        pieces.append(_Placeholder(name))
    return pieces


# -- reading as the shell does ---------------------------------------------------------------


@dataclass
class _Frame:
    kind: str
    depth: int = 0  # open '(' in a command, open '{' in ${...}
    word: list[str] = field(default_factory=list)  # the word being read (command frames)


class _Scan:
    """One pass over a template: quoting state, the command with references, the words."""

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        self.stack: list[_Frame] = [_Frame(_CMD)]
        self.out: list[str] = []
        self.words: list[str] = []
        self.comment = False
        self._pending = ""  # a '$' or '\\' whose meaning depends on the next character

    # the word being built belongs to the innermost command-like frame
    def _word(self) -> list[str]:
        for frame in reversed(self.stack):
            if frame.kind in (_CMD, _BT):
                return frame.word
        return self.stack[0].word

    def _flush(self) -> None:
        word = self._word()
        if word:
            self.words.append("".join(word))
            word.clear()

    def flush_all(self) -> None:
        for frame in self.stack:
            if frame.word:
                self.words.append("".join(frame.word))
                frame.word.clear()

    def placeholder(self, name: str) -> None:
        if self._pending in ("\\", "$"):
            raise InvalidValueError(
                self.field_name,
                f"has '{self._pending}' right before '{{{name}}}'",
                hint=f"write '{{{name}}}' alone for the context's {name}, or '${{{{NAME}}}}' "
                "for a shell variable",
            )
        self._pending = ""
        kind = self.stack[-1].kind
        ref = "${" + variable(name) + "}"
        if self.comment:
            self.out.append(ref)
            return
        if kind == _CMD:
            self.out.append(f'"{ref}"')
        elif kind == _DQ:
            self.out.append(ref)
        elif kind == _SQ:
            self.out.append(f"'\"{ref}\"'")
        else:
            raise InvalidValueError(
                self.field_name,
                f"has '{{{name}}}' inside {kind}, where its value cannot be quoted",
                hint="put it outside, or use $(...) instead of backticks",
            )
        self._word().append(_REF)

    def feed(self, text: str) -> None:
        for char in text:
            self.out.append(char)
            if not self.comment:
                self._char(char)

    def finish(self) -> None:
        self._settle()
        if len(self.stack) > 1:
            opened = {
                _DQ: '"',
                _SQ: "'",
                _BT: "`",
                _CMD: "$(",
                _PARAM: "${",
                _ANSI: "$'",
            }[self.stack[-1].kind]
            raise InvalidValueError(
                self.field_name, f"has an unterminated {opened!r}: the shell would refuse it"
            )

    def _settle(self) -> None:
        """A pending '$' followed by nothing special is a literal dollar."""
        if self._pending == "$":
            self._literal("$")
        self._pending = ""

    def _literal(self, char: str) -> None:
        self._word().append(char)

    def _push(self, kind: str) -> None:
        self.stack.append(_Frame(kind))

    def _pop(self) -> None:
        frame = self.stack.pop()
        if frame.kind in (_CMD, _BT):
            if frame.word:
                self.words.append("".join(frame.word))
            self._word().append(_REF)  # the substitution's output is part of the outer word
        elif frame.kind == _PARAM:
            self._word().append(_REF)

    def _char(self, char: str) -> None:
        frame = self.stack[-1]
        if self._pending == "name":  # the rest of a $NAME belongs to the reference
            if _NAME_CHARS.fullmatch(char):
                return
            self._pending = ""
        pending, self._pending = self._pending, ""
        if pending == "\\":
            if not (frame.kind == _DQ and char == "\n"):
                self._literal(char)
            return
        if pending == "$":
            if self._dollar(char, frame):
                return
            self._literal("$")
        if frame.kind == _SQ:
            if char == "'":
                self.stack.pop()
            else:
                self._literal(char)
        elif frame.kind == _ANSI:
            if char == "\\":
                self._pending = "\\"
            elif char == "'":
                self.stack.pop()
            else:
                self._literal(char)
        elif frame.kind == _PARAM:
            if char == "\\":
                self._pending = "\\"
            elif char == "{":
                frame.depth += 1
            elif char == "}":
                if frame.depth:
                    frame.depth -= 1
                else:
                    self._pop()
            elif char in "'\"":
                self._push(_SQ if char == "'" else _DQ)
            elif char == "$":
                self._pending = "$"
        elif frame.kind == _DQ:
            if char == "\\":
                self._pending = "\\"
            elif char == '"':
                self.stack.pop()
            elif char == "$":
                self._pending = "$"
            elif char == "`":
                self._push(_BT)
            else:
                self._literal(char)
        else:  # a command: the top level, $(...) or backticks
            self._command_char(char, frame)

    def _command_char(self, char: str, frame: _Frame) -> None:
        if char == "\\":
            self._pending = "\\"
        elif char == "'":
            self._push(_SQ)
        elif char == '"':
            self._push(_DQ)
        elif char == "$":
            self._pending = "$"
        elif char == "`":
            if frame.kind == _BT:
                self._flush()
                self._pop()
            else:
                self._push(_BT)
        elif char == "#" and not self._word():
            self.comment = True
        elif char.isspace() or char in _OPERATORS:
            self._flush()
        elif char == "(":
            self._flush()
            frame.depth += 1
        elif char == ")":
            self._flush()
            if frame.depth:
                frame.depth -= 1
            elif len(self.stack) > 1 and frame.kind == _CMD:
                self._pop()
        else:
            self._literal(char)

    def _dollar(self, char: str, frame: _Frame) -> bool:
        """Handle the character after a '$'; False when the '$' was a literal dollar."""
        if char == "(":
            self._push(_CMD)
            return True
        if char == "{":
            self._push(_PARAM)
            return True
        if char == "'" and frame.kind != _DQ:
            self._push(_ANSI)
            return True
        if _NAME_CHARS.fullmatch(char) or char in _SPECIAL_PARAMS:
            self._word().append(_REF)
            if _NAME_CHARS.fullmatch(char) and not char.isdigit():
                self._pending = "name"
            return True
        return False


# -- what looks like a secret ----------------------------------------------------------------

_SECRET_NAME: Final = re.compile(
    r"(?i)(?:password|passwd|passphrase|token|secret|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|auth[_-]?key|client[_-]?secret)$"
)
_SECRET_PART: Final = re.compile(
    r"(?i)password|passwd|passphrase|token|secret|api[_-]?key|apikey|private[_-]?key"
)
_ASSIGNMENT: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
_FLAG: Final = re.compile(r"--?([A-Za-z0-9][A-Za-z0-9_.-]*)(?:=(.*))?", re.S)
_HEADER: Final = re.compile(r"([A-Za-z0-9_-]+)\s*:\s*(.*)", re.S)
_AUTH_SCHEME: Final = re.compile(r"(?i)(?:bearer|basic|token|bot|digest|apikey)\s+(.*)", re.S)
_URL_PASSWORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@")
_KEY_VALUE: Final = re.compile(
    r"(?i)[\"']?[A-Za-z0-9_-]*(?:password|passwd|token|secret|api[_-]?key|apikey)[\"']?"
    r"\s*[:=]\s*[\"']?([^\"'\s,;&}]+)"
)
_TOKEN_SHAPES: Final = (
    ("an OpenAI or Anthropic key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}")),
    ("an NVIDIA API key", re.compile(r"\bnvapi-[A-Za-z0-9_-]{20,}")),
    (
        "a GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{16,}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
_MIN_SECRET = 6


def _literal(value: str | None) -> bool:
    """Whether ``value`` is typed in (no reference in it) and long enough to be a secret."""
    if value is None or _REF in value:
        return False
    value = value.strip()
    if len(value) < _MIN_SECRET:
        return False
    return not value.startswith(("/", "~", "./", "../"))  # a file that holds it is fine


def _word_secret(word: str, following: str | None) -> str | None:
    for what, shape in _TOKEN_SHAPES:
        if shape.search(word):
            return f"holds what looks like {what}"
    url = _URL_PASSWORD.search(word)
    if url and _REF not in url.group(1):
        return "holds a password in a URL"
    assignment = _ASSIGNMENT.fullmatch(word)
    if assignment and _SECRET_PART.search(assignment.group(1)) and _literal(assignment.group(2)):
        return f"sets {assignment.group(1)} to a value typed in"
    flag = _FLAG.fullmatch(word)
    if flag and _SECRET_NAME.search(flag.group(1)):
        value = flag.group(2) if flag.group(2) is not None else following
        if value is not None and not value.startswith("-") and _literal(value):
            return f"passes --{flag.group(1)} a value typed in"
    header = _HEADER.fullmatch(word)
    if header:
        name, value = header.group(1), header.group(2)
        if name.lower() in ("authorization", "proxy-authorization"):
            scheme = _AUTH_SCHEME.fullmatch(value.strip())
            if _literal(scheme.group(1) if scheme else value):
                return f"sends an {name} header typed in"
        elif _SECRET_PART.search(name) and _literal(value or following):
            return f"sends a {name} header typed in"
    for match in _KEY_VALUE.finditer(word):
        if _literal(match.group(1)):
            return "holds a secret-named key with a value typed in"
    return None
