"""An in-process TCP proxy in front of the test stack's one broker: several of them act as the separate broker
endpoints of a cluster, and each can fail the way a node does: `crash()` (the process dies: open connections reset,
new ones refused) or `partition()` (the host vanishes from the network: nothing answers, nothing is refused)."""

from __future__ import annotations

import socket
import struct
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0  # connections taken, for the test's checks
        self.forwarded_up_bytes = 0  # from the client to the broker
        self._state = "up"  # up | partitioned | crashed
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def crash(self) -> None:
        """kill -9 of the node: every open connection reset, the port closed."""
        with self._lock:
            self._state = "crashed"
            sockets, self._open = self._open, []
        self._listener.close()
        for sock in sockets:
            # Linger 0: close() sends RST, as the kernel does for a dead process's sockets.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self._thread.join(2)

    def partition(self) -> None:
        """The node's link down: bytes in either direction vanish; new connections are taken but never answered."""
        with self._lock:
            self._state = "partitioned"

    def close(self) -> None:
        if self._state != "crashed":
            self.crash()

    def _accept(self) -> None:
        while self._state != "crashed":
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # crashed
            with self._lock:
                self.accepted += 1
                if self._state == "partitioned":
                    self._open.append(client)  # held open, never answered
                    continue
                upstream = socket.create_connection(self.target)
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(65536):
                if self._state != "up":
                    continue  # partitioned: dropped on the floor
                sink.sendall(data)
                if up:
                    self.forwarded_up_bytes += len(data)
        except OSError:
            pass
        if self._state == "up":  # one side closed: close the other, as a real path would
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
