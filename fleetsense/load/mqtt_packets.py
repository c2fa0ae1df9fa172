"""MQTT 3.1.1 packets, only what a QoS 1 publisher needs: CONNECT, PUBLISH, PINGREQ, DISCONNECT out; CONNACK,
PUBACK, PINGRESP in (split from the byte stream by PacketReader)."""

from __future__ import annotations

import struct

CONNACK, PUBACK, PINGRESP = 2, 4, 13
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
U16 = struct.Struct(">H")


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer: 7 bits per byte, least significant group first, high bit = more."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"an MQTT packet cannot have {n} bytes")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8_field(text: str) -> bytes:
    """A string as MQTT carries it: u16 length, then UTF-8 (a topic given this way is packed once per vehicle)."""
    data = text.encode()
    return U16.pack(len(data)) + data


def connect_packet(client_id: str, username: str, password: str, *, keepalive_s: int) -> bytes:
    """CONNECT with a clean session, user name and password (flags 0xC2), no will."""
    body = b"\x00\x04MQTT\x04\xc2" + U16.pack(keepalive_s)
    body += utf8_field(client_id) + utf8_field(username) + utf8_field(password)
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic_field: bytes, packet_id: int, payload: bytes, *, dup: bool = False) -> bytes:
    """PUBLISH at QoS 1; `topic_field` is the topic with its u16 length prefix (utf8_field)."""
    size = len(topic_field) + 2 + len(payload)
    return b"".join([b"\x3a" if dup else b"\x32", remaining_length(size), topic_field, U16.pack(packet_id), payload])


class PacketReader:
    """Splits a byte stream into (packet type, body) as packets complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        packets: list[tuple[int, bytes]] = []
        buffer = self._buffer
        while len(buffer) >= 2:
            size, shift, pos = 0, 0, 1
            while True:
                if pos >= len(buffer):
                    return packets  # the length is not complete yet
                digit = buffer[pos]
                size |= (digit & 0x7F) << shift
                pos, shift = pos + 1, shift + 7
                if not digit & 0x80:
                    break
                if shift > 21:
                    raise ValueError("malformed MQTT remaining length")
            if len(buffer) < pos + size:
                return packets
            packets.append((buffer[0] >> 4, bytes(buffer[pos : pos + size])))
            del buffer[: pos + size]
        return packets
