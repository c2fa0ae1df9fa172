"""Reading one znode from ZooKeeper, enough to learn which JobManager leads (Flink writes the leader's address
there). The read-only subset of ZooKeeper's wire protocol (jute: big-endian ints, length-prefixed frames), so
`cluster status` needs no ZooKeeper client library and no JVM start (zkCli.sh takes ~1 s per call)."""

from __future__ import annotations

import socket
import struct

GET_DATA = 4
GET_CHILDREN = 8
CLOSE = -11
NO_NODE = -101
SESSION_TIMEOUT_MS = 4000


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _read_frame(conn: socket.socket) -> bytes:
    size = struct.unpack(">i", _read_exactly(conn, 4))[0]
    return _read_exactly(conn, size)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("ZooKeeper closed the connection")
        data += chunk
    return data


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


def _request(conn: socket.socket, xid: int, op: int, path: str) -> tuple[int, bytes]:
    """Send one request (path, no watch); return (error code, reply body)."""
    conn.sendall(_frame(struct.pack(">ii", xid, op) + _string(path) + b"\0"))
    reply = _read_frame(conn)
    _xid, _zxid, err = struct.unpack(">iqi", reply[:16])
    return err, reply[16:]


def _connect(address: str, port: int, timeout_s: float) -> socket.socket:
    conn = socket.create_connection((address, port), timeout=timeout_s)
    # protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly
    conn.sendall(_frame(struct.pack(">iqiq", 0, 0, SESSION_TIMEOUT_MS, 0) + struct.pack(">i", 16) + bytes(16) + b"\0"))
    _read_frame(conn)
    return conn


def get_data(address: str, port: int, path: str, *, timeout_s: float = 2.0) -> bytes | None:
    """The data of znode `path`; None when it does not exist. Raises OSError when ZooKeeper does not answer."""
    with _connect(address, port, timeout_s) as conn:
        err, body = _request(conn, 1, GET_DATA, path)
        conn.sendall(_frame(struct.pack(">ii", 2, CLOSE)))
    if err == NO_NODE:
        return None
    if err != 0:
        raise OSError(f"ZooKeeper getData {path} failed with error {err}")
    size = struct.unpack(">i", body[:4])[0]
    return body[4 : 4 + size] if size > 0 else b""


def get_children(address: str, port: int, path: str, *, timeout_s: float = 2.0) -> list[str]:
    """The names of znode `path`'s children; [] when it does not exist."""
    with _connect(address, port, timeout_s) as conn:
        err, body = _request(conn, 1, GET_CHILDREN, path)
        conn.sendall(_frame(struct.pack(">ii", 2, CLOSE)))
    if err == NO_NODE:
        return []
    if err != 0:
        raise OSError(f"ZooKeeper getChildren {path} failed with error {err}")
    count = struct.unpack(">i", body[:4])[0]
    names, offset = [], 4
    for _ in range(max(count, 0)):
        size = struct.unpack(">i", body[offset : offset + 4])[0]
        names.append(body[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return names
