"""Which paths sync leaves alone: ``.git/``, ``.gitignore`` files, ``.workbenchignore``, defaults.

Patterns follow gitignore's syntax (negation, anchoring, ``**``, trailing ``/`` for folders) and
are compiled here into regular expressions, once. The compiled rules travel to the remote agent
as JSON so that both sides ignore exactly the same paths with one implementation of the syntax:
if the two sides disagreed, a file ignored on one side only would look deleted to the other.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE_FILES = (".gitignore", ".workbenchignore")

# Never worth syncing: version control data, caches that rebuild themselves, OS litter.
# ``.git`` itself is never synced in any letter case, file or folder, whatever the rules say
# (``IgnoreRules.matches``): git runs what is there (hooks, ``core.fsmonitor``).
DEFAULT_PATTERNS = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.py[co]",
    ".ipynb_checkpoints/",
    ".DS_Store",
    ".*.sw[px]",
)

# Our own files in flight: temp files of a write before its rename. Always ignored, never
# negatable, so a crash never syncs half a file.
TEMP_PREFIX = ".wbsync-"
INTERNAL_PATTERNS = (f"{TEMP_PREFIX}*",)

# Names never synced, in any letter case, whatever the rules say (the agent keeps the same
# list: ``tests/unit/test_agent_twins.py`` runs both): ``.git`` (git runs what is in it: hooks,
# ``core.fsmonitor``) and ``.nvwb-identity`` (this machine's identity token for a project
# folder, ``workbench.identity``: a remote that could write it here could bind the folder to
# an identity of its choosing, and the laptop's token is nothing the remote needs).
ALWAYS_IGNORED = frozenset({".git", ".nvwb-identity"})


@dataclass(frozen=True)
class Rule:
    """One compiled pattern, relative to the folder (``base``) of the file that held it."""

    base: str
    regex: str
    negate: bool
    dir_only: bool

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "re": self.regex, "neg": self.negate, "dir": self.dir_only}


def compile_pattern(line: str, base: str = "") -> Rule | None:
    """A gitignore line as a ``Rule``; ``None`` for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are dropped unless escaped with a backslash.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    body = _translate(line)
    regex = body if anchored else f"(?:.*/)?{body}"
    return Rule(base=base, regex=regex, negate=negate, dir_only=dir_only)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i) and (i == 0 or pattern[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            inner = pattern[i + 1 : end]
            if inner[:1] in ("!", "^"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class IgnoreRules:
    """An ordered list of rules; the last rule that matches a path decides, as in git.

    ``case_insensitive``: match without regard to letter case, as git does on a disk that folds
    case (macOS, Windows): there ``.ENV`` is the same file as ``.env``, so a rule for one must
    keep the other off this machine too. The remote agent gets the same rules (``to_json``)."""

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        internal: Sequence[Rule] = (),
        case_insensitive: bool = False,
    ) -> None:
        self.rules = list(rules)
        self.tail = 0  # how many rules at the end always come last (remote-only folders)
        self.internal = list(internal) or [
            r for p in INTERNAL_PATTERNS if (r := compile_pattern(p)) is not None
        ]
        self.case_insensitive = case_insensitive
        self._compiled: list[tuple[Rule, re.Pattern[str]]] = []
        self._refresh()

    def _refresh(self) -> None:
        flags = re.DOTALL | (re.IGNORECASE if self.case_insensitive else 0)
        self._compiled = [(rule, re.compile(rule.regex, flags)) for rule in self.rules]
        self._internal = [re.compile(rule.regex, re.DOTALL) for rule in self.internal]

    def add(self, rules: Iterable[Rule]) -> None:
        self.rules.extend(rules)
        self._refresh()

    def add_folder_files(self, root: Path, folder: str, names: Collection[str]) -> None:
        """The rules of ``folder``'s ignore files (those among ``names``), before the tail: call
        for each folder before looking at what it holds, outer folders first."""
        for name in IGNORE_FILES:
            if name not in names:
                continue
            try:
                text = (root / folder / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            at = len(self.rules) - self.tail
            self.rules[at:at] = parse_lines(text, folder)
            self._refresh()

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` itself is ignored (its folders are not looked at: see ``ignored``)."""
        name = path.rpartition("/")[2]
        if name.casefold() in ALWAYS_IGNORED or any(rx.fullmatch(name) for rx in self._internal):
            return True
        ignored = False
        for rule, rx in self._compiled:
            if rule.dir_only and not is_dir:
                continue
            if rule.base:
                if not path.startswith(rule.base + "/"):
                    continue
                sub = path[len(rule.base) + 1 :]
            else:
                sub = path
            if rx.fullmatch(sub):
                ignored = not rule.negate
        return ignored

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` or any folder above it is ignored (an ignored folder's content is)."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self.matches("/".join(parts[:i]), True):
                return True
        return self.matches(path, is_dir)

    def to_json(self) -> list[dict[str, Any]]:
        if not self.case_insensitive:
            return [rule.to_json() for rule in self.rules]
        return [{**rule.to_json(), "re": f"(?i:{rule.regex})"} for rule in self.rules]

    def fingerprint(self) -> str:
        rules = [(r.base, r.regex, r.negate, r.dir_only) for r in self.rules]
        return repr((self.case_insensitive, rules))


def parse_lines(text: str, base: str = "") -> list[Rule]:
    return [r for line in text.splitlines() if (r := compile_pattern(line, base)) is not None]


def base_rules(
    *,
    remote_only: Sequence[str] = (),
    extra: Sequence[str] = (),
    case_insensitive: bool = False,
) -> IgnoreRules:
    """Defaults, then ``remote_only`` folders (kept off the laptop: never synced) as the tail
    that always comes last; the project's own ignore files go in between."""
    rules = IgnoreRules(parse_lines("\n".join(DEFAULT_PATTERNS)), case_insensitive=case_insensitive)
    anchored = [f"/{p.strip('/')}/" for p in remote_only if p.strip("/")]
    tail = parse_lines("\n".join([*anchored, *extra]))
    rules.add(tail)
    rules.tail = len(tail)
    return rules


def load_rules(
    root: Path,
    *,
    remote_only: Sequence[str] = (),
    extra: Sequence[str] = (),
    case_insensitive: bool = False,
) -> IgnoreRules:
    """Defaults, then every ``.gitignore``/``.workbenchignore`` under ``root`` (outer first, so
    deeper files override), then ``remote_only`` folders.

    Folders are visited breadth first and each file's rules apply before its subfolders are
    entered, so an ignored ``node_modules/`` or ``.venv/`` is never walked.
    """
    rules = base_rules(remote_only=remote_only, extra=extra, case_insensitive=case_insensitive)
    queue: deque[str] = deque([""])
    while queue:
        folder = queue.popleft()
        try:
            entries = list(os.scandir(root / folder if folder else root))
        except OSError:
            continue
        rules.add_folder_files(root, folder, {e.name for e in entries})
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if not rules.ignored(rel, True):
                    queue.append(rel)
    return rules
