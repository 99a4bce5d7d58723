"""The remote's side of a sync: the agent's sync commands, one channel each, over a ``Runner``.

The remote tree is driven the way ``LocalTree`` is driven, so the applier can treat both sides
alike. Small requests (scan, hash, ops, small files inline) go to one long-lived ``serve``
process, so they cost a round trip rather than a login shell and an interpreter start (hundreds
of milliseconds on a host whose shell runs ``pyenv``/``conda`` init); bulk transfers and the
watcher get channels of their own. A request that breaks off (the link dropped) raises
``TransportError``; what it already did is safe, since each change was made whole or not at all.
Every answer is checked by ``untrusted`` before anything here uses it: the remote may lie.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from workbench.sync import untrusted
from workbench.sync.ignore import IgnoreRules
from workbench.sync.manifest import Problem, ScanResult
from workbench.sync.transport import Proc, Runner, TransportError
from workbench.sync.wire import Result, SendItem

logger = logging.getLogger(__name__)

PYTHON = "python3"
# The agent needs nothing outside the standard library, so it skips ``site``: 50 ms less per
# start where site-packages hold many .pth files (pyenv, conda).
PYTHON_FLAGS = ("-S",)
# From this many bytes a transfer started cold gets an SSH connection of its own.
BULK_OWN_CONNECTION = 32 << 20


def _lines(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    for raw in stream:
        if raw.strip():
            yield json.loads(raw)


class RemoteTree:
    """A folder on the remote, reached through the agent at ``agent_path``."""

    side = "remote"

    def __init__(
        self,
        runner: Runner,
        agent_path: str,
        root: str,
        python: str = PYTHON,
        *,
        bulk: Runner | None = None,
    ) -> None:
        """``runner`` carries requests and the watcher (the context's own connection suits:
        it is already up); ``bulk`` carries transfer streams (default: ``runner``). ``python`` is
        the remote interpreter, ``python3`` until the agent names the real one."""
        self.runner = runner
        self.bulk = bulk or runner
        self.agent_path = agent_path
        self.root = root
        self.python = python
        self._server: Proc | None = None
        self._lock = threading.Lock()
        self._next_id = 0
        self._spare: Proc | None = None
        self._spare_bulk = False  # the spare is as ``start_bulk`` makes it (fit for any size)
        self._want_bulk = False  # a large transfer is likely: the spare should be fit for it
        self._spare_lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def _argv(self, python: str, command: str, *extra: str) -> list[str]:
        return [python, *PYTHON_FLAGS, self.agent_path, command, self.root, *extra]

    def _start(self, command: str, *extra: str, runner: Runner | None = None) -> Proc:
        if self._server is None:
            self.request("hello")  # learns the interpreter's real path on the way
        chosen = runner or self.runner
        return chosen.start(self._argv(self.python, command, *extra))

    def start_soon(self) -> None:
        """Start the agent's ``serve`` in the background (the caller loads its state and
        rules meanwhile); the first request waits for it, or starts it again if it failed."""

        def hello() -> None:
            try:
                self.request("hello")
            except TransportError as exc:
                logger.debug("the agent did not start ahead of need: %s", exc)

        threading.Thread(target=hello, daemon=True, name="sync-agent-start").start()

    # -- transfer processes, started ahead of need -----------------------------------------

    def warm_bulk(self, *, large: bool = False) -> None:
        """Start a transfer process in the background unless a fitting one is waiting: a full
        cycle may well send files, and the remote shell and interpreter (a few hundred ms on a
        host whose shell runs pyenv/conda init) then start while the trees are scanned. It is a
        session on the master when one runs (no login for what may go unused), unless ``large``
        (this many bytes will go: ``BULK_OWN_CONNECTION``): then one on a connection of its own,
        made while the scan still runs."""
        with self._spare_lock:
            if self._warming is not None:
                self._want_bulk = self._want_bulk or large
                return
            spare = self._spare
            if spare is not None and spare.alive() and (self._spare_bulk or not large):
                return
            self._want_bulk = large
            self._warming = threading.Thread(
                target=self._make_spare, daemon=True, name="sync-warm-bulk"
            )
            self._warming.start()

    def _make_spare(self) -> None:
        argv = self._argv(self.python, "stream")
        while True:
            with self._spare_lock:
                large = self._want_bulk
            spare: Proc | None
            try:
                spare, as_bulk = (
                    (self.bulk.start_bulk(argv), True) if large else self.bulk.start_spare(argv)
                )
            except TransportError as exc:
                logger.debug("no transfer process ahead of need: %s", exc)
                spare, as_bulk = None, False
            with self._spare_lock:
                old, self._spare, self._spare_bulk = self._spare, spare, as_bulk
                # A large transfer became likely while this one started: one more, fit for it.
                again = spare is not None and self._want_bulk and not as_bulk
                if not again:
                    self._warming = None
            if old is not None:
                old.kill()
            if not again:
                return

    def _take_spare(self, size: int = 0) -> Proc | None:
        """The process started ahead (waiting for its start if under way), now the caller's;
        for a large transfer only one on a connection of its own (a spare on the shared master
        then stays for a later, smaller one)."""
        with self._spare_lock:
            warming = self._warming
        if warming is not None:
            warming.join(60.0)
        with self._spare_lock:
            if size >= BULK_OWN_CONNECTION and not self._spare_bulk:
                return None
            spare, self._spare = self._spare, None
        return spare

    def _transfer_process(self, kind: str, size: int) -> Proc:
        """A process to ``receive`` or ``send`` ``size`` bytes: the one started ahead if it is
        still alive and fits, else a new one (on a connection of its own for a large transfer,
        where the relay through the shared master costs more than a login)."""
        spare = self._take_spare(size)
        if spare is not None and not spare.alive():
            spare.kill()
            spare = None
        if spare is None:
            if self._server is None:
                self.request("hello")  # learns the interpreter's real path on the way
            argv = self._argv(self.python, "stream")
            large = size >= BULK_OWN_CONNECTION
            spare = self.bulk.start_bulk(argv) if large else self.bulk.start(argv)
        proc = spare
        try:
            proc.stdin.write(kind.encode("ascii") + b"\n")
        except OSError as exc:
            proc.kill()
            raise TransportError(f"the transfer process broke off: {exc}") from exc
        return proc

    # -- the request channel ---------------------------------------------------------------

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """One request to the ``serve`` process (started on first use, and again after the
        link dropped)."""
        with self._lock:
            if self._server is None:
                self._server = self._start_server()
            server = self._server
            try:
                reply = self._ask(server, cmd, fields)
            except (OSError, EOFError, ValueError) as exc:
                self._server = None
                server.kill()
                raise TransportError(f"the remote {cmd} broke off: {exc}") from exc
        if not isinstance(reply, dict):
            raise untrusted.refuse(f"a reply that is not an object to {cmd}")
        if reply.get("error"):
            raise TransportError(f"the remote {cmd} failed: {untrusted.text(reply['error'])}")
        return reply

    def _ask(self, server: Proc, cmd: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        line = json.dumps({"id": self._next_id, "cmd": cmd, **fields}, ensure_ascii=False)
        server.stdin.write(line.encode("utf-8") + b"\n")
        server.stdin.flush()
        raw = server.stdout.readline()
        if not raw:
            raise EOFError(f"the agent's channel closed: {server.stderr_text().strip()[-200:]}")
        reply: dict[str, Any] = json.loads(raw)  # checked by the caller: it may not be an object
        return reply

    def _start_server(self) -> Proc:
        """Start ``serve`` and learn the interpreter behind ``python3``: a pyenv or conda shim
        in front of it can cost half a second on every later start. A remembered path that no
        longer works falls back to ``python3``."""
        for python in dict.fromkeys([self.python, PYTHON]):
            server = self.runner.start(self._argv(python, "serve"))
            try:
                reply = self._ask(server, "hello", {})
            except (OSError, EOFError, ValueError) as exc:
                server.kill()
                failure: Exception = exc
                continue
            self.python = untrusted.hello(reply, python) if isinstance(reply, dict) else python
            return server
        raise TransportError(f"the agent did not start on the remote: {failure}")

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close_stdin()
            server.kill()
        spare = self._take_spare()
        if spare is not None:
            spare.close_stdin()
            spare.kill()

    def _finish(self, proc: Proc, what: str) -> None:
        try:
            code = proc.wait(60.0)
        except Exception as exc:
            proc.kill()
            raise TransportError(f"the remote {what} did not finish: {exc}") from exc
        if code != 0:
            raise TransportError(
                f"the remote {what} failed (exit {code}): {proc.stderr_text().strip()[-300:]}",
                hint="the link may have dropped; sync retries when it is back",
            )

    def _run_lines(self, command: str, stdin: bytes, *extra: str) -> list[dict[str, Any]]:
        proc = self._start(command, *extra)
        try:
            writer = threading.Thread(target=_write_all, args=(proc, stdin), daemon=True)
            writer.start()
            lines = list(_lines(proc.stdout))
            writer.join()
        except (OSError, EOFError, ValueError) as exc:
            proc.kill()
            raise TransportError(f"the remote {command} broke off: {exc}") from exc
        self._finish(proc, command)
        return lines

    # -- reading ---------------------------------------------------------------------------

    def prepare(self, *, create: bool) -> None:
        """Create the root if asked (a first sync); starts the agent on the way."""
        self.request("prepare", create=create)

    def scan(self, rules: IgnoreRules, *, create: bool = False, clean: bool = False) -> ScanResult:
        """The remote manifest; ``create`` makes the root first (a first sync), ``clean``
        deletes the temp files a killed transfer left, met on the way."""
        reply = self.request("scan", rules=rules.to_json(), create=create, clean=clean)
        return untrusted.scan(reply)

    def hash(self, paths: Iterable[str]) -> tuple[dict[str, str], list[Problem]]:
        wanted = list(paths)
        if not wanted:
            return {}, []
        return untrusted.digests(self.request("hash", paths=wanted).get("results"), wanted)

    # -- changing --------------------------------------------------------------------------

    def apply_ops(self, ops: Iterable[dict[str, Any]]) -> list[Result]:
        batch = list(ops)
        if not batch:
            return []
        reply = self.request("apply", ops=batch)
        return untrusted.results(reply.get("results"), [str(o["path"]) for o in batch])

    def put(self, files: list[dict[str, Any]]) -> list[Result]:
        """Land small files sent inline (``LocalTree.read_inline`` made them)."""
        reply = self.request("put", files=files)
        return untrusted.results(reply.get("results"), [str(f["path"]) for f in files])

    def get(self, items: list[SendItem]) -> list[untrusted.InlineFile]:
        """Read small files inline, for ``LocalTree.land_inline``: one checked file per item."""
        reply = self.request("get", files=[i.to_json() for i in items])
        return untrusted.inline_files(reply.get("files"), items)

    def receive(
        self,
        produce: Callable[[IO[bytes]], list[Result]],
        dests: list[str],
        on_result: Callable[[Result], None] | None = None,
        size: int = 0,
    ) -> tuple[list[Result], list[Result]]:
        """Start the agent's ``receive`` and let ``produce`` write the transfer stream (about
        ``size`` bytes, the files ``dests`` in that order) into it.

        Returns the sender's verdicts and the remote's results (read as they come, so neither
        side's pipe ever fills up and stalls the other).
        """
        proc = self._transfer_process("receive", size)
        results: list[Result] = []
        failure: list[BaseException] = []

        def read() -> None:
            try:
                for data in _lines(proc.stdout):
                    if len(results) >= len(dests):
                        raise untrusted.refuse("a result for a file that was not sent")
                    result = untrusted.result(data, dests[len(results)])
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
            except (OSError, EOFError, ValueError, TransportError) as exc:
                failure.append(exc)

        reader = threading.Thread(target=read, daemon=True, name="sync-receive-results")
        reader.start()
        try:
            verdicts = produce(proc.stdin)
            proc.stdin.flush()
            proc.close_stdin()
        except (OSError, EOFError, ValueError) as exc:
            proc.kill()
            reader.join(5.0)
            raise TransportError(f"the transfer to the remote broke off: {exc}") from exc
        reader.join()
        if failure:
            proc.kill()
            if isinstance(failure[0], TransportError):
                raise failure[0]
            raise TransportError(f"the transfer to the remote broke off: {failure[0]}")
        self._finish(proc, "receive")
        return verdicts, results

    def send(
        self, items: list[SendItem], consume: Callable[[IO[bytes]], list[Result]]
    ) -> list[Result]:
        """Ask the agent to ``send`` ``items``; ``consume`` reads the transfer stream it writes."""
        proc = self._transfer_process("send", sum(i.source.size for i in items))
        payload = "".join(json.dumps(i.to_json(), ensure_ascii=False) + "\n" for i in items)
        try:
            _write_all(proc, payload.encode("utf-8"))
            results = consume(proc.stdout)
        except TransportError:
            proc.kill()
            raise
        except (OSError, EOFError, ValueError) as exc:
            proc.kill()
            raise TransportError(f"the transfer from the remote broke off: {exc}") from exc
        except Exception as exc:  # a malformed line: a stream cut short
            proc.kill()
            raise TransportError(f"the transfer from the remote broke off: {exc}") from exc
        self._finish(proc, "send")
        return results

    def watch(self, rules: IgnoreRules, *, poll: bool = False) -> Proc:
        """Start the agent's ``watch``; the caller reads its lines and kills it when done."""
        extra = ["--rules", "-"] + (["--poll"] if poll else [])
        proc = self._start("watch", *extra)
        proc.stdin.write((json.dumps(rules.to_json()) + "\n").encode("utf-8"))
        proc.stdin.flush()
        return proc


def _write_all(proc: Proc, data: bytes) -> None:
    try:
        if data:
            proc.stdin.write(data)
            proc.stdin.flush()
    except OSError as exc:
        logger.debug("remote command stopped reading its input: %s", exc)
    finally:
        proc.close_stdin()
