"""Local port forwards: a listening socket on 127.0.0.1 whose connections go through SSH channels.

Each accepted connection asks its ``opener`` for a fresh direct-tcpip channel, so a forward
outlives reconnection: the local port stays, and new connections use whatever transport the
connection has by then. Two threads pump each connection, one per direction.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType

import paramiko

from workbench.errors import ContextError, WorkbenchError

logger = logging.getLogger(__name__)

ChannelOpener = Callable[[], paramiko.Channel]

_CHUNK = 256 * 1024


class LocalForward:
    """``127.0.0.1:local_port`` → ``remote_host:remote_port`` on the far side."""

    def __init__(
        self,
        opener: ChannelOpener,
        remote_host: str,
        remote_port: int,
        *,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
    ) -> None:
        self.remote_host = remote_host
        self.remote_port = remote_port
        self._opener = opener
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((local_host, local_port))
            self._listener.listen(128)
        except OSError as exc:
            self._listener.close()
            raise ContextError(
                f"cannot listen on {local_host}:{local_port}: {exc.strerror or exc}",
                hint="pick another local port, or 0 for any free one",
            ) from exc
        self.local_host, self.local_port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"forward-{self.local_port}"
        )
        self._thread.start()
        logger.info("forwarding %s to %s:%s", self.url_authority, remote_host, remote_port)

    @property
    def url_authority(self) -> str:
        return f"{self.local_host}:{self.local_port}"

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        logger.info("closed forward %s", self.url_authority)

    def __enter__(self) -> LocalForward:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                logger.exception("forward %s stopped accepting", self.url_authority)
                return
            threading.Thread(
                target=self._serve,
                args=(client,),
                daemon=True,
                name=f"forward-{self.local_port}-conn",
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            channel = self._opener()
        except (WorkbenchError, paramiko.SSHException, OSError) as exc:
            logger.warning(
                "forward %s: cannot reach %s:%s: %s",
                self.url_authority,
                self.remote_host,
                self.remote_port,
                exc,
            )
            client.close()
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, channel, self._forget)
        with self._lock:
            if self._closed.is_set():
                pair.close()
                return
            self._pairs.add(pair)
        pair.start()

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)


class _Pair:
    """One local socket and its channel, pumped both ways until both directions end."""

    def __init__(
        self, client: socket.socket, channel: paramiko.Channel, done: Callable[[_Pair], None]
    ) -> None:
        self.client = client
        self.channel = channel
        self._done = done
        self._remaining = 2
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True, name="forward-up").start()
        threading.Thread(target=self._downstream, daemon=True, name="forward-down").start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.shutdown(socket.SHUT_RDWR)
        self.client.close()
        self.channel.close()

    def _upstream(self) -> None:
        try:
            while data := self.client.recv(_CHUNK):
                self.channel.sendall(data)
            self.channel.shutdown_write()
        except (OSError, paramiko.SSHException, EOFError):
            self.close()
        self._finish()

    def _downstream(self) -> None:
        try:
            while data := self.channel.recv(_CHUNK):
                self.client.sendall(data)
            self.client.shutdown(socket.SHUT_WR)
        except (OSError, paramiko.SSHException, EOFError):
            self.close()
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self.close()
            self._done(self)
