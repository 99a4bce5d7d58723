"""``nvwb commit|discard|fetch|pull|push|publish|history|switch-branch``, ``list branches``,
``create branch``: git on the laptop's copy of the project (``workbench.vcs``)."""

from __future__ import annotations

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.vcs import Repo

_HISTORY_COLUMNS = [("COMMIT", "short"), ("DATE", "date"), ("AUTHOR", "author"),
                    ("SUBJECT", "subject")]  # fmt: skip
_BRANCH_COLUMNS = [("", "marker"), ("BRANCH", "name"), ("UPSTREAM", "upstream")]


def _repo(inv: Invocation) -> Repo:
    repo = Repo(inv.project().path, inv.env)
    repo.check()
    return repo


def commit(inv: Invocation) -> Result:
    repo = _repo(inv)
    made = repo.commit(
        str(inv.args.message), override_warnings=bool(getattr(inv.args, "override", False))
    )
    return Result(
        data={"hash": made.hash, "subject": made.subject, "author": made.author},
        message=f"Committed {made.hash[:10]}: {made.subject}",
    )


def discard(inv: Invocation) -> Result:
    repo = _repo(inv)
    paths = list(getattr(inv.args, "paths", None) or [])
    changes = repo.status().changes
    if not changes:
        return Result(data={"discarded": []}, message="Nothing to discard.")
    what = ", ".join(paths) if paths else f"all {len(changes)} uncommitted change(s)"
    inv.confirm(f"Discard {what}? New files are deleted; this cannot be undone.")
    gone = repo.discard(paths)
    return Result(data={"discarded": gone}, message=f"Discarded {len(gone)} change(s).")


def fetch(inv: Invocation) -> Result:
    said = _repo(inv).fetch()
    return Result(data={"output": said}, message=said or "Fetched; nothing new.")


def pull(inv: Invocation) -> Result:
    said = _repo(inv).pull()
    return Result(data={"output": said}, message=said or "Pulled.")


def push(inv: Invocation) -> Result:
    said = _repo(inv).push()
    return Result(data={"output": said}, message=said or "Pushed.")


def publish(inv: Invocation) -> Result:
    repo = _repo(inv)
    url = str(inv.args.remote_url)
    said = repo.publish(url, remote=str(getattr(inv.args, "remote", None) or "origin"))
    status = repo.status()
    return Result(
        data={"remote_url": url, "branch": status.branch, "upstream": status.upstream},
        message=f"Published {status.branch} to {url} (upstream {status.upstream})."
        + (f"\n{said}" if said else ""),
    )


def history(inv: Invocation) -> Result:
    count = int(getattr(inv.args, "n", None) or 20)
    rows = [
        {
            "hash": c.hash,
            "short": c.hash[:10],
            "date": c.date,
            "author": c.author,
            "subject": c.subject,
        }
        for c in _repo(inv).history(count)
    ]
    return Result(data=rows, columns=_HISTORY_COLUMNS)


def list_branches(inv: Invocation) -> Result:
    rows = [
        {
            "name": b.name,
            "current": b.current,
            "upstream": b.upstream,
            "marker": "*" if b.current else "",
        }
        for b in _repo(inv).branches()
    ]
    return Result(data=rows, columns=_BRANCH_COLUMNS)


def create_branch(inv: Invocation) -> Result:
    name = str(inv.args.name)
    _repo(inv).create_branch(name, carry=bool(getattr(inv.args, "carry", False)))
    return Result(data={"branch": name}, message=f"Created branch {name} and switched to it.")


def switch_branch(inv: Invocation) -> Result:
    name = str(inv.args.name)
    _repo(inv).switch(name)
    return Result(data={"branch": name}, message=f"Switched to branch {name}.")
