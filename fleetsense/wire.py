"""The fleetsense wire format: one binary message per batch window, shared by the edge (encode) and the
cloud (decode). Specified in docs/wire-format.md; this module and that document change together.

Pure Python (struct + array) so a Raspberry Pi needs no numpy; the cloud decodes the sample block with
numpy in one call (see fleetsense.cloud.decode).
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from fleetsense.errors import WireFormatError
from fleetsense.ids import validate_vehicle_id

MAGIC = b"FS"
VERSION = 1
MAX_SAMPLES = 65535
MAX_CHANNELS = 16

# magic, version, flags, kind, vehicle-id length
_PREFIX = struct.Struct(">2sBBBB")
# sequence number, start time (µs since the Unix epoch, UTC), sample period (µs), channel count
_BATCH = struct.Struct(">QqIB")
_SCALE = struct.Struct(">f")
_COUNT = struct.Struct(">H")


class Flags(IntFlag):
    NONE = 0
    # The device clock was not NTP-synchronised when the batch started: times are only relative.
    CLOCK_UNSYNCED = 0x01


class Kind(IntEnum):
    # Accelerometer x, y, z in raw counts; scale converts counts to m/s².
    ACCEL = 1


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One window of samples from one sensor of one vehicle, as raw int16 counts."""

    vehicle_id: str
    seq: int
    start_time_us: int
    sample_period_us: int
    kind: Kind
    scales: tuple[float, ...]  # SI units per count, one per channel
    samples: tuple[tuple[int, ...], ...]  # [sample][channel] raw int16 counts
    flags: Flags = Flags.NONE

    @property
    def channels(self) -> int:
        return len(self.scales)

    def sample_time_us(self, index: int) -> int:
        return self.start_time_us + index * self.sample_period_us


def encode(batch: Batch) -> bytes:
    vid = validate_vehicle_id(batch.vehicle_id).encode("ascii")
    channels = batch.channels
    if not 1 <= channels <= MAX_CHANNELS:
        raise WireFormatError(f"a batch needs 1..{MAX_CHANNELS} channels, got {channels}")
    if len(batch.samples) > MAX_SAMPLES:
        raise WireFormatError(f"a batch holds at most {MAX_SAMPLES} samples, got {len(batch.samples)}")
    if not 0 <= batch.seq < 2**64:
        raise WireFormatError(f"sequence number out of range: {batch.seq}")
    if not 0 < batch.sample_period_us < 2**32:
        raise WireFormatError(f"sample period out of range: {batch.sample_period_us} µs")
    block = array("h")
    for sample in batch.samples:
        if len(sample) != channels:
            raise WireFormatError(f"every sample needs {channels} channels, got {len(sample)}")
        try:
            block.extend(sample)
        except OverflowError as exc:
            raise WireFormatError(f"sample {sample} does not fit in int16 counts") from exc
    if sys.byteorder == "little":
        block.byteswap()  # the wire is big-endian
    return b"".join(
        [
            _PREFIX.pack(MAGIC, VERSION, int(batch.flags), int(batch.kind), len(vid)),
            vid,
            _BATCH.pack(batch.seq, batch.start_time_us, batch.sample_period_us, channels),
            b"".join(_SCALE.pack(scale) for scale in batch.scales),
            _COUNT.pack(len(batch.samples)),
            block.tobytes(),
        ]
    )


@dataclass(frozen=True, kw_only=True)
class Header:
    """Everything but the samples; `samples_offset` says where the int16 block starts in the message."""

    vehicle_id: str
    seq: int
    start_time_us: int
    sample_period_us: int
    kind: Kind
    flags: Flags
    scales: tuple[float, ...]
    sample_count: int
    samples_offset: int


def decode_header(message: bytes) -> Header:
    view = memoryview(message)
    try:
        magic, version, flags, kind, vid_len = _PREFIX.unpack_from(view, 0)
        if magic != MAGIC:
            raise WireFormatError(f"not a fleetsense message (magic {bytes(magic)!r})")
        if version != VERSION:
            raise WireFormatError(f"unsupported wire version {version}; this build reads {VERSION}")
        offset = _PREFIX.size
        vehicle_id = bytes(view[offset : offset + vid_len]).decode("ascii")
        validate_vehicle_id(vehicle_id)
        offset += vid_len
        seq, start_us, period_us, channels = _BATCH.unpack_from(view, offset)
        offset += _BATCH.size
        if not 1 <= channels <= MAX_CHANNELS or period_us == 0:
            raise WireFormatError(f"bad batch header: {channels} channels, period {period_us} µs")
        scales = tuple(_SCALE.unpack_from(view, offset + 4 * i)[0] for i in range(channels))
        offset += 4 * channels
        (count,) = _COUNT.unpack_from(view, offset)
        offset += _COUNT.size
    except (struct.error, UnicodeDecodeError) as exc:
        raise WireFormatError(f"truncated or malformed header: {exc}") from exc
    except WireFormatError:
        raise
    except Exception as exc:  # ConfigError from the id check, ValueError from enums
        raise WireFormatError(f"malformed header: {exc}") from exc
    expected = offset + count * channels * 2
    if len(message) != expected:
        raise WireFormatError(f"message is {len(message)} bytes, header promises {expected}")
    try:
        kind_value = Kind(kind)
    except ValueError as exc:
        raise WireFormatError(f"unknown sensor kind {kind}") from exc
    return Header(
        vehicle_id=vehicle_id,
        seq=seq,
        start_time_us=start_us,
        sample_period_us=period_us,
        kind=kind_value,
        flags=Flags(flags),
        scales=scales,
        sample_count=count,
        samples_offset=offset,
    )


def decode(message: bytes) -> Batch:
    """Decode a whole message in pure Python (tests, tools); the cloud's hot path uses numpy instead."""
    header = decode_header(message)
    block = array("h")
    block.frombytes(message[header.samples_offset :])
    if sys.byteorder == "little":
        block.byteswap()
    channels = len(header.scales)
    samples = tuple(tuple(block[i : i + channels]) for i in range(0, len(block), channels))
    return Batch(
        vehicle_id=header.vehicle_id,
        seq=header.seq,
        start_time_us=header.start_time_us,
        sample_period_us=header.sample_period_us,
        kind=header.kind,
        scales=header.scales,
        samples=samples,
        flags=header.flags,
    )
