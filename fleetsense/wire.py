"""The fleetsense wire format: one binary message per batch window, shared by the edge (encode) and the
cloud (decode). Specified in docs/wire-format.md; this module and that document change together.

Pure Python so a Raspberry Pi needs no numpy. `decode` here is the reference decoder (tests, tools, the
edge's outbox); the cloud decodes the sample block vectorised with numpy in fleetsense.cloud.decode, from the
Header that `decode_header` has already checked.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any

from fleetsense.errors import ConfigError, WireFormatError
from fleetsense.ids import validate_vehicle_id

MAGIC = b"FS"
VERSION = 3  # the newest version `encode` writes: v3 for a batch with a sequence epoch, v2 without
READABLE_VERSIONS = (1, 2, 3)  # what `decode_header` reads: every version still in the field
EPOCH_LIMIT = 2**32  # a sequence epoch is a u32; 0 means "not stated" (v1, v2)
MAX_SAMPLES = 65535
# seq travels as a u64 but must stay below 2^63: the cloud keeps it in signed 64-bit integers (Cassandra bigint).
SEQ_LIMIT = 2**63
# The largest message a broker must accept and a device may send (the gateway refuses anything larger).
# A 1 s IMU batch at 100 Hz is about 0.6-1 KB; 64 KiB leaves room for long windows and high rates.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_VALUES = 65535  # samples x channels in one v2 batch, so the escape count always fits its u16
RICE_K_MAX = 16
ESCAPE = 16  # a high part of 16 or more is sent as an escape code plus a u16 in the escape list

# magic, version, flags, kind, vehicle-id length: the same 6 bytes open every version
_PREFIX = struct.Struct(">2sBBBB")
# v1: seq, start time (µs since the Unix epoch, UTC), sample period (µs), channel count
_V1_BATCH = struct.Struct(">QqIB")
_V1_SCALE = struct.Struct(">f")
_V1_COUNT = struct.Struct(">H")
# v2: seq, start time (the batch's identity, which `restamp` rewrites), then the block's shape: sample period,
# sample count N, channel count C, escape count E
_V2_IDENTITY = struct.Struct(">Qq")
_SHAPE_FORMAT = "IHBH"
_V2_BATCH = struct.Struct(_V2_IDENTITY.format + _SHAPE_FORMAT)
# v3: v2 with the sequence epoch (u32) after the seq
_V3_IDENTITY = struct.Struct(">QIq")
_V3_BATCH = struct.Struct(_V3_IDENTITY.format + _SHAPE_FORMAT)
# v2 channel descriptor: scale, offset, base count, predictor, Rice parameter k
_DESCRIPTOR = struct.Struct(">ffhBB")
_CRC = struct.Struct(">I")
_V2_FIXED = _PREFIX.size + _V2_BATCH.size + _CRC.size  # bytes of a v2 message besides id, channels, samples
_V3_FIXED = _V2_FIXED + 4

# Unary codes of the high parts: h zero bits then a one; ESCAPE zeros and a one announce an escape.
_UNARY = tuple("0" * h + "1" for h in range(ESCAPE + 1))


class Flags(IntFlag):
    NONE = 0
    # The device clock was not synchronised (NTP/GPS) when the batch started and the device could not re-time
    # the batch on a synchronised clock before sending it: start times are its guess; order and spacing within
    # one run are still right. (A batch re-timed after sync arrives without the flag: docs/edge-agent.md, "Time".)
    CLOCK_UNSYNCED = 0x01
    # Samples were lost just before sample 0 (FIFO overflow, sensor reset, I2C failure): do not join this
    # batch seamlessly to the previous one of the same kind (filters, integrators, event detectors).
    GAP_BEFORE = 0x02
    # First batch of this kind since the agent started or re-initialised the sensor: reset any per-stream
    # state; the sequence number may have skipped (numbers lost to a crash are never reused).
    RESTARTED = 0x04
    # First batch of this kind since the device's synchronised clock was stepped (its monotonic-to-UTC mapping
    # moved by more than 20 ms), or a batch re-admitted from the cloud's time quarantine with a shift:
    # start_time_us may jump relative to the previous batch's end; spacing within the batch is still right.
    CLOCK_STEPPED = 0x08


KNOWN_FLAGS = {
    1: Flags.CLOCK_UNSYNCED,
    2: Flags.CLOCK_UNSYNCED | Flags.GAP_BEFORE | Flags.RESTARTED | Flags.CLOCK_STEPPED,
    3: Flags.CLOCK_UNSYNCED | Flags.GAP_BEFORE | Flags.RESTARTED | Flags.CLOCK_STEPPED,
}


class Kind(IntEnum):
    ACCEL = 1  # accelerometer x, y, z
    IMU = 2  # accelerometer x, y, z and gyroscope x, y, z
    BARO = 3  # barometric pressure and temperature


# Channels in wire order, each named with its SI unit (value_si = offset + count * scale), declared once here.
CHANNEL_NAMES: dict[Kind, tuple[str, ...]] = {
    Kind.ACCEL: ("ax_m_s2", "ay_m_s2", "az_m_s2"),
    Kind.IMU: ("ax_m_s2", "ay_m_s2", "az_m_s2", "gx_rad_s", "gy_rad_s", "gz_rad_s"),
    Kind.BARO: ("pressure_pa", "temperature_c"),
}


class Predictor(IntEnum):
    BASE = 0  # every sample is predicted by the channel's base count: suits noise around a level
    PREVIOUS = 1  # each sample is predicted by the one before (the first by the base): suits smooth signals


_PREDICTORS = frozenset(p.value for p in Predictor)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One window of samples from one sensor of one vehicle, as raw int16 counts.

    Channel c of sample i is `offsets[c] + samples[i][c] * scales[c]` in the unit of CHANNEL_NAMES[kind][c].
    `offsets` defaults to zero for every channel.
    """

    vehicle_id: str
    seq: int
    start_time_us: int
    sample_period_us: int
    kind: Kind
    scales: tuple[float, ...]  # SI units per count, one per channel; sent as float32
    samples: tuple[tuple[int, ...], ...]  # [sample][channel] raw int16 counts
    flags: Flags = Flags.NONE
    offsets: tuple[float, ...] = ()  # SI units at count 0, one per channel; sent as float32
    # The device's sequence epoch: drawn at random (non-zero) when the device starts a sequence (a new outbox: a
    # first install, a reflash, a replacement); seq counts within it. 0: not stated (encoded as v2).
    epoch: int = 0

    def __post_init__(self) -> None:
        if not self.offsets:
            object.__setattr__(self, "offsets", (0.0,) * len(self.scales))

    @property
    def channels(self) -> int:
        return len(self.scales)

    def sample_time_us(self, index: int) -> int:
        return self.start_time_us + index * self.sample_period_us


@dataclass(frozen=True, kw_only=True)
class ChannelCoding:
    """How one channel's counts are coded in a v2 sample block (see docs/wire-format.md, 'Sample block')."""

    predictor: Predictor
    base: int  # int16 count the prediction starts from
    rice_k: int  # 0..16: low bits of each zigzagged residual sent verbatim


@dataclass(frozen=True, kw_only=True)
class Header:
    """Everything but the samples, checked; the sample block lies in message[samples_offset:samples_end].

    v1: the block is big-endian int16 counts, sample-major. v2: `escape_count` u16 escapes, then the bit
    stream from `bitstream_offset`, coded per channel as `codings` say.
    """

    version: int
    vehicle_id: str
    seq: int
    start_time_us: int
    sample_period_us: int
    kind: Kind
    flags: Flags
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    sample_count: int
    samples_offset: int
    samples_end: int
    codings: tuple[ChannelCoding, ...] = ()  # v2 and v3
    escape_count: int = 0  # v2 and v3
    epoch: int = 0  # v3 only: the device's sequence epoch (0: not stated)

    @property
    def end_time_us(self) -> int:
        """The time of the batch's last sample (its start time for an empty batch)."""
        return self.start_time_us + max(self.sample_count - 1, 0) * self.sample_period_us

    @property
    def channels(self) -> int:
        return len(self.scales)

    @property
    def bitstream_offset(self) -> int:
        return self.samples_offset + 2 * self.escape_count


def counts_from_si(value_si: float, *, scale: float, offset: float = 0.0) -> int:
    """The int16 count nearest to `value_si`, saturating like an ADC (so a batch can always be encoded)."""
    return max(-32768, min(32767, round((value_si - offset) / scale)))


# ---------------------------------------------------------------------------------------------------------
# Encoding (edge)


def encode(batch: Batch) -> bytes:
    """The message for `batch`: counts delta/level-predicted, zigzagged and Rice-coded, CRC32 at the end; v3 when
    the batch states its sequence epoch, else v2 (byte for byte what v2 devices send)."""
    version = 3 if batch.epoch else 2
    vid = _check_batch(batch, version=version)
    columns = _columns(batch)
    if len(batch.samples) * batch.channels > MAX_VALUES:
        raise WireFormatError(
            f"a v2 batch holds at most {MAX_VALUES} values (samples x channels), got "
            f"{len(batch.samples)} x {batch.channels}",
            hint="use a shorter batch window",
        )
    descriptors: list[bytes] = []
    low_fields: list[str] = []
    codes: list[str] = []
    escapes: list[int] = []
    for column, scale, offset in zip(columns, batch.scales, batch.offsets, strict=True):
        coding, zigzagged = _choose_coding(column)
        descriptors.append(_pack_descriptor(scale, offset, coding))
        k = coding.rice_k
        if k:
            low_fields.append(_bit_fields([z & ((1 << k) - 1) for z in zigzagged], k))
        highs = [z >> k for z in zigzagged]
        if highs and max(highs) >= ESCAPE:
            escapes += [high for high in highs if high >= ESCAPE]
            highs = [min(high, ESCAPE) for high in highs]
        codes += [_UNARY[high] for high in highs]
    bits = "".join(low_fields) + "".join(codes)
    bits += "0" * (-len(bits) % 8)
    body = b"".join(
        [
            _PREFIX.pack(MAGIC, version, int(batch.flags), int(batch.kind), len(vid)),
            vid,
            _batch_fields(batch, len(columns[0]), len(escapes)),
            *descriptors,
            struct.pack(f">{len(escapes)}H", *escapes),
            int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"",
        ]
    )
    return body + _CRC.pack(zlib.crc32(body))


def retimed(message: bytes, shift_us: int, *, set_flags: Flags = Flags.NONE, clear_flags: Flags = Flags.NONE) -> bytes:
    """`message` with its start time moved by `shift_us` and its flags changed, every other byte as it was (the
    CRC recomputed): how the edge re-times batches taken before its clock was synchronised, and how the cloud
    re-admits a quarantined batch. The result is checked like any received message."""
    header = decode_header(message)
    flags = (header.flags | set_flags) & ~clear_flags
    if flags & ~KNOWN_FLAGS[header.version]:
        raise WireFormatError(f"flags {int(flags):#04x} are not defined for version {header.version}")
    time_at = _PREFIX.size + len(header.vehicle_id) + 8 + (4 if header.version == 3 else 0)
    start_us = header.start_time_us + shift_us
    if not -(2**63) <= start_us < 2**63:
        raise WireFormatError(f"a shift of {shift_us} µs takes the start time out of the int64 range")
    out = bytearray(message)
    out[3] = int(flags)
    struct.pack_into(">q", out, time_at, start_us)
    if header.version >= 2:
        _CRC.pack_into(out, len(out) - _CRC.size, zlib.crc32(out[: -_CRC.size]))
    decode_header(bytes(out))  # a shift that leaves the int64 range or the rules fails here, not in the cloud
    return bytes(out)


@dataclass(frozen=True)
class StampTemplate:
    """A checked v2/v3 message cut around its identity (vehicle id, seq, start time) for `Restamper`: `head` is
    magic, version, flags and kind; `tail` runs from the sample period to the end of the sample block."""

    head: bytes
    epoch: int  # kept as it is: the epoch belongs to the samples' device sequence, not to the stamp
    kind: Kind
    sample_count: int
    tail: bytes

    @classmethod
    def from_message(cls, message: bytes) -> StampTemplate:
        header = decode_header(message)  # the CRC and every rule: a template is a message the cloud accepts
        if header.version == 1:
            raise WireFormatError("only messages of wire version 2 or 3 can be re-stamped, got version 1")
        identity = _V3_IDENTITY if header.version == 3 else _V2_IDENTITY
        tail_start = _PREFIX.size + len(header.vehicle_id) + identity.size
        return cls(bytes(message[: _PREFIX.size - 1]), header.epoch, header.kind, header.sample_count,
                   bytes(message[tail_start : -_CRC.size]))  # fmt: skip


class Restamper:
    """`restamp` for one vehicle at the load generator's rate: the vehicle id is checked once and the CRC of each
    constant prefix (magic .. vehicle id) computed once, so a message costs one CRC over its identity and tail."""

    def __init__(self, vehicle_id: str) -> None:
        self.vehicle_id = validate_vehicle_id(vehicle_id)
        self._vid = vehicle_id.encode("ascii")
        self._prefixes: dict[bytes, tuple[bytes, int]] = {}

    def stamp(self, template: StampTemplate, seq: int, start_time_us: int) -> bytes:
        """The template's message sent by this vehicle as batch `seq` starting at `start_time_us`."""
        if not (0 <= seq < SEQ_LIMIT and -(2**63) <= start_time_us < 2**63):
            raise WireFormatError(
                f"cannot stamp seq {seq} and start time {start_time_us} µs: need 0 <= seq < 2^63 and a start time "
                "in the int64 range"
            )
        prefix = self._prefixes.get(template.head)
        if prefix is None:
            head = template.head + bytes([len(self._vid)]) + self._vid
            prefix = self._prefixes[template.head] = (head, zlib.crc32(head))
        head, head_crc = prefix
        if template.epoch:
            identity = _V3_IDENTITY.pack(seq, template.epoch, start_time_us)
        else:
            identity = _V2_IDENTITY.pack(seq, start_time_us)
        crc = zlib.crc32(template.tail, zlib.crc32(identity, head_crc))
        return b"".join((head, identity, template.tail, _CRC.pack(crc)))


def restamp(message: bytes, *, vehicle_id: str, seq: int, start_time_us: int) -> bytes:
    """`message` (v2 or v3) as vehicle `vehicle_id` sends it as batch `seq` starting at `start_time_us`, with its
    CRC: byte for byte what `encode` gives for the same batch under that identity (samples, flags, epoch kept).
    How the load generator publishes thousands of vehicles from a few rendered messages; `Restamper` is the same
    for one vehicle and many messages, each template checked once."""
    return Restamper(vehicle_id).stamp(StampTemplate.from_message(message), seq, start_time_us)


def _batch_fields(batch: Batch, count: int, escapes: int) -> bytes:
    if batch.epoch:
        return _V3_BATCH.pack(
            batch.seq, batch.epoch, batch.start_time_us, batch.sample_period_us, count, batch.channels, escapes
        )
    return _V2_BATCH.pack(batch.seq, batch.start_time_us, batch.sample_period_us, count, batch.channels, escapes)


def encode_v1(batch: Batch) -> bytes:
    """The v1 message for `batch` (raw int16 counts, no offsets, no CRC): for tests and the size benchmark."""
    vid = _check_batch(batch, version=1)
    if any(offset != 0.0 for offset in batch.offsets):
        raise WireFormatError("wire version 1 cannot carry channel offsets", hint="encode with version 2")
    _columns(batch)  # checks every count
    block = array("h", [count for sample in batch.samples for count in sample])
    if sys.byteorder == "little":
        block.byteswap()  # the wire is big-endian
    return b"".join(
        [
            _PREFIX.pack(MAGIC, 1, int(batch.flags), int(batch.kind), len(vid)),
            vid,
            _V1_BATCH.pack(batch.seq, batch.start_time_us, batch.sample_period_us, batch.channels),
            b"".join(_V1_SCALE.pack(scale) for scale in batch.scales),
            _V1_COUNT.pack(len(batch.samples)),
            block.tobytes(),
        ]
    )


def _check_batch(batch: Batch, *, version: int = 2) -> bytes:
    vid = validate_vehicle_id(batch.vehicle_id).encode("ascii")
    try:
        kind = Kind(batch.kind)
    except ValueError as exc:
        raise WireFormatError(f"unknown sensor kind {batch.kind!r}") from exc
    expected = len(CHANNEL_NAMES[kind])
    if batch.channels != expected:
        raise WireFormatError(f"kind {kind.name} has {expected} channels, the batch has {batch.channels}")
    if len(batch.offsets) != batch.channels:
        raise WireFormatError(f"{batch.channels} channels need {batch.channels} offsets, got {len(batch.offsets)}")
    if len(batch.samples) > MAX_SAMPLES:
        raise WireFormatError(f"a batch holds at most {MAX_SAMPLES} samples, got {len(batch.samples)}")
    if not 0 <= batch.seq < SEQ_LIMIT:
        raise WireFormatError(f"sequence number out of range: {batch.seq} (must be 0 <= seq < 2^63)")
    if not -(2**63) <= batch.start_time_us < 2**63:
        raise WireFormatError(f"start time out of range: {batch.start_time_us} µs")
    if not 0 < batch.sample_period_us < 2**32:
        raise WireFormatError(f"sample period out of range: {batch.sample_period_us} µs")
    if not 0 <= batch.epoch < EPOCH_LIMIT or (batch.epoch and version < 3):
        raise WireFormatError(f"sequence epoch {batch.epoch} out of range (a u32, carried by wire version 3 only)")
    if int(batch.flags) & ~int(KNOWN_FLAGS[version]):
        raise WireFormatError(f"flags {int(batch.flags):#04x} include bits wire version {version} does not define")
    return vid


def _columns(batch: Batch) -> list[list[int]]:
    """The samples channel by channel, each checked to be an int16 count (by array("h"), in C)."""
    for sample in batch.samples:
        if len(sample) != batch.channels:
            raise WireFormatError(f"every sample needs {batch.channels} channels, got {len(sample)}")
    try:
        return [array("h", column).tolist() for column in zip(*batch.samples, strict=True)] or [
            [] for _ in batch.scales
        ]
    except (OverflowError, TypeError) as exc:
        raise WireFormatError(f"a sample does not fit in int16 counts ({exc})") from exc


def _zigzag_residuals(column: list[int], predictor: Predictor, base: int) -> list[int]:
    if predictor is Predictor.PREVIOUS:
        diffs = [column[0] - base, *[b - a for a, b in pairwise(column)]] if column else []
    else:
        diffs = [x - base for x in column]
    # residual = diff wrapped into int16, then zigzag (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)
    return [(r << 1) ^ (r >> 15) for r in [((d + 32768) & 0xFFFF) - 32768 for d in diffs]]


def _bit_fields(values: list[int], width: int) -> str:
    """`values` as `width`-bit fields, MSB first, as a string of 0/1: one big int per 64 values is much faster
    than formatting each value, and chunking keeps it linear in the number of values."""
    chunks = []
    for start in range(0, len(values), 64):
        chunk, packed = values[start : start + 64], 0
        for value in chunk:
            packed = (packed << width) | value
        chunks.append(format(packed, f"0{len(chunk) * width}b"))
    return "".join(chunks)


def _rice_bits(zigzagged: list[int], k: int, largest: int) -> int:
    """Coded size of one channel's residuals with parameter k (`largest` is max(zigzagged))."""
    cost = len(zigzagged) * (k + 1)
    if largest >> k >= ESCAPE:
        return cost + sum([h if h < ESCAPE else ESCAPE + 16 for h in [z >> k for z in zigzagged]])
    return cost + sum([z >> k for z in zigzagged])


def _cheapest_k(zigzagged: list[int]) -> tuple[int, int]:
    """(k, bits) with the smallest coded size, found by walking downhill from two guesses: the mean's bit
    length (right for well-behaved noise) and the median's (right when a few outliers are cheaper escaped)."""
    if not zigzagged:
        return 0, 0
    mean = sum(zigzagged) // len(zigzagged)
    median = sorted(zigzagged)[len(zigzagged) // 2]
    largest = max(zigzagged)
    guesses = sorted({max(0, mean.bit_length() - 1), max(0, median.bit_length() - 1)})
    return min((_descend(zigzagged, guess, largest) for guess in guesses), key=lambda k_bits: (k_bits[1], k_bits[0]))


def _descend(zigzagged: list[int], k: int, largest: int) -> tuple[int, int]:
    best_k, best_bits = k, _rice_bits(zigzagged, k, largest)
    for step in (-1, 1):
        k = best_k + step
        while 0 <= k <= RICE_K_MAX:
            bits = _rice_bits(zigzagged, k, largest)
            if bits >= best_bits:
                break
            best_k, best_bits = k, bits
            k += step
    return best_k, best_bits


def _choose_coding(column: list[int]) -> tuple[ChannelCoding, list[int]]:
    """The smaller of: level coding around the median, delta coding from the first sample."""
    level_base = sorted(column)[len(column) // 2] if column else 0
    level = _zigzag_residuals(column, Predictor.BASE, level_base)
    delta_base = column[0] if column else 0
    delta = _zigzag_residuals(column, Predictor.PREVIOUS, delta_base)
    level_k, level_bits = _cheapest_k(level)
    delta_k, delta_bits = _cheapest_k(delta)
    if level_bits < delta_bits:
        return ChannelCoding(predictor=Predictor.BASE, base=level_base, rice_k=level_k), level
    return ChannelCoding(predictor=Predictor.PREVIOUS, base=delta_base, rice_k=delta_k), delta


def _pack_descriptor(scale: float, offset: float, coding: ChannelCoding) -> bytes:
    try:
        return _DESCRIPTOR.pack(scale, offset, coding.base, int(coding.predictor), coding.rice_k)
    except (struct.error, OverflowError) as exc:  # a scale or offset beyond float32's range
        raise WireFormatError(f"scale {scale} or offset {offset} does not fit in float32") from exc


# ---------------------------------------------------------------------------------------------------------
# Decoding: the header (shared by every decoder), then the samples in pure Python


def decode_header(message: bytes) -> Header:
    """The checked header of a message of any readable version; raises WireFormatError with the reason."""
    if len(message) < 3:
        raise WireFormatError(f"truncated: {len(message)} bytes is too short for any fleetsense message")
    if message[:2] != MAGIC:
        raise WireFormatError(f"not a fleetsense message (magic {bytes(message[:2])!r}, expected {MAGIC!r})")
    version = message[2]
    if version == 1:
        return _decode_v1_header(message)
    if version in (2, 3):
        return _decode_v2_header(message, version)
    raise WireFormatError(
        f"unsupported wire version {version}; this build reads versions {', '.join(map(str, READABLE_VERSIONS))}",
        hint="update the cloud's decoder before devices send a newer version",
    )


# Lookups for the header's small enumerations: the cloud decodes every message's header, and calling an enum
# class costs about a microsecond where a dict or tuple lookup costs a few tens of nanoseconds.
_KIND_BY_VALUE = {kind.value: kind for kind in Kind}
_FLAGS_BY_VALUE = tuple(Flags(value) for value in range(int(max(KNOWN_FLAGS.values())) + 1))
_PREDICTOR_BY_VALUE = {predictor.value: predictor for predictor in Predictor}
_CHANNEL_COUNTS = {kind: len(names) for kind, names in CHANNEL_NAMES.items()}


def _common_fields(message: bytes, version: int, flags: int, kind: int, vid_len: int) -> tuple[str, Kind, Flags]:
    vehicle_id = _vehicle_id(bytes(message[_PREFIX.size : _PREFIX.size + vid_len]))
    kind_value = _KIND_BY_VALUE.get(kind)
    if kind_value is None:
        raise WireFormatError(f"unknown sensor kind {kind}")
    if flags & ~int(KNOWN_FLAGS[version]):
        raise WireFormatError(f"flags {flags:#04x} set bits that wire version {version} reserves")
    return vehicle_id, kind_value, _FLAGS_BY_VALUE[flags]


@lru_cache(maxsize=4096)  # a fleet's vehicle ids; errors are raised, never cached
def _vehicle_id(raw: bytes) -> str:
    try:
        return validate_vehicle_id(raw.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"malformed header: the vehicle id is not ASCII ({exc})") from exc
    except ConfigError as exc:
        raise WireFormatError(f"malformed header: {exc.message}") from exc


def _check_seq_and_period(seq: int, period_us: int) -> None:
    if seq >= SEQ_LIMIT:
        raise WireFormatError(f"sequence number {seq} is not below 2^63 (the cloud stores it as a signed 64-bit int)")
    if period_us == 0:
        raise WireFormatError("zero sample period")


def _check_channels(kind: Kind, channels: int) -> None:
    expected = _CHANNEL_COUNTS[kind]
    if channels != expected:
        raise WireFormatError(
            f"channel count mismatch: kind {kind.name} has {expected} channels, header says {channels}"
        )


def _decode_v1_header(message: bytes) -> Header:
    try:
        _, version, flags, kind, vid_len = _PREFIX.unpack_from(message, 0)
        offset = _PREFIX.size + vid_len
        seq, start_us, period_us, channels = _V1_BATCH.unpack_from(message, offset)
        offset += _V1_BATCH.size
        scales = struct.unpack_from(f">{channels}f", message, offset)
        offset += 4 * channels
        (count,) = _V1_COUNT.unpack_from(message, offset)
        offset += _V1_COUNT.size
    except struct.error as exc:
        raise WireFormatError(f"truncated header ({len(message)} bytes): {exc}") from exc
    vehicle_id, kind_value, flag_value = _common_fields(message, version, flags, kind, vid_len)
    _check_channels(kind_value, channels)
    _check_seq_and_period(seq, period_us)
    expected = offset + count * channels * 2
    if len(message) != expected:
        raise WireFormatError(f"lengths disagree: message is {len(message)} bytes, header promises {expected}")
    return Header(
        version=1,
        vehicle_id=vehicle_id,
        seq=seq,
        start_time_us=start_us,
        sample_period_us=period_us,
        kind=kind_value,
        flags=flag_value,
        scales=tuple(scales),
        offsets=(0.0,) * channels,
        sample_count=count,
        samples_offset=offset,
        samples_end=len(message),
    )


def _decode_v2_header(message: bytes, version: int) -> Header:
    """A v2 or v3 header (v3 is v2 with the sequence epoch after the seq)."""
    fixed = _V3_FIXED if version == 3 else _V2_FIXED
    if len(message) < fixed:
        raise WireFormatError(f"truncated: {len(message)} bytes, a v{version} message has at least {fixed}")
    end = len(message) - _CRC.size
    (carried,) = _CRC.unpack_from(message, end)
    computed = zlib.crc32(memoryview(message)[:end])
    if carried != computed:
        raise WireFormatError(
            f"bad CRC: message carries {carried:#010x}, its content gives {computed:#010x} "
            "(corrupted or truncated in the outbox or in transit)",
            hint="the message cannot be trusted; the device keeps it in its outbox until acknowledged",
        )
    try:
        _, version, flags, kind, vid_len = _PREFIX.unpack_from(message, 0)
        offset = _PREFIX.size + vid_len
        if version == 3:
            seq, epoch, start_us, period_us, count, channels, escapes = _V3_BATCH.unpack_from(message, offset)
            offset += _V3_BATCH.size
        else:
            epoch = 0
            seq, start_us, period_us, count, channels, escapes = _V2_BATCH.unpack_from(message, offset)
            offset += _V2_BATCH.size
        descriptors = _unpack_descriptors(message, offset, channels)
        offset += _DESCRIPTOR.size * channels
    except struct.error as exc:
        raise WireFormatError(f"truncated header ({len(message)} bytes): {exc}") from exc
    if offset > end:
        raise WireFormatError(f"truncated: the header runs {offset - end} bytes into the CRC")
    vehicle_id, kind_value, flag_value = _common_fields(message, version, flags, kind, vid_len)
    _check_channels(kind_value, channels)
    _check_seq_and_period(seq, period_us)
    if version == 3 and epoch == 0:
        raise WireFormatError("a v3 message must state its sequence epoch (0 is reserved for v1 and v2)")
    if count * channels > MAX_VALUES:
        raise WireFormatError(f"{count} samples x {channels} channels exceed the {MAX_VALUES} values of a batch")
    if escapes > count * channels:
        raise WireFormatError(f"lengths disagree: {escapes} escapes for only {count * channels} values")
    # Five fields per descriptor: scale, offset, base, predictor, k (and every kind has two or more channels).
    bases, predictors, ks = descriptors[2::5], descriptors[3::5], descriptors[4::5]
    if not _PREDICTORS.issuperset(predictors) or max(ks) > RICE_K_MAX:
        for c, (predictor, k) in enumerate(zip(predictors, ks, strict=True)):
            if predictor not in _PREDICTORS:
                raise WireFormatError(f"channel {c}: unknown predictor {predictor}")
            if k > RICE_K_MAX:
                raise WireFormatError(f"channel {c}: bit width (Rice k) {k} out of range 0..{RICE_K_MAX}")
    low_bits = count * sum(ks)
    least = 2 * escapes + (low_bits + count * channels + 7) // 8
    most = 2 * escapes + (low_bits + count * channels * (ESCAPE + 1) + 7) // 8
    if not least <= end - offset <= most:
        raise WireFormatError(
            f"lengths disagree: the sample block is {end - offset} bytes, the header's counts need {least}..{most}"
        )
    return Header(
        version=version,
        vehicle_id=vehicle_id,
        seq=seq,
        start_time_us=start_us,
        sample_period_us=period_us,
        kind=kind_value,
        flags=flag_value,
        scales=descriptors[0::5],
        offsets=descriptors[1::5],
        sample_count=count,
        samples_offset=offset,
        samples_end=end,
        codings=tuple(map(_channel_coding, predictors, bases, ks)),
        escape_count=escapes,
        epoch=epoch,
    )


def _unpack_descriptors(message: bytes, offset: int, channels: int) -> tuple[Any, ...]:
    """The fields of `channels` descriptors from `offset`, flat (five per channel), with one struct call."""
    if offset + _DESCRIPTOR.size * channels > len(message):
        for c in range(channels):  # raises struct.error naming the first descriptor that does not fit
            _DESCRIPTOR.unpack_from(message, offset + _DESCRIPTOR.size * c)
    return _descriptor_block(channels).unpack_from(message, offset)


@cache  # at most 256 channel counts, and the kinds have 2, 3 and 6
def _descriptor_block(channels: int) -> struct.Struct:
    return struct.Struct(">" + _DESCRIPTOR.format.lstrip(">") * channels)


@lru_cache(maxsize=4096)  # ChannelCoding is immutable; a fleet's bases and k's repeat
def _channel_coding(predictor: int, base: int, rice_k: int) -> ChannelCoding:
    return ChannelCoding(predictor=_PREDICTOR_BY_VALUE[predictor], base=base, rice_k=rice_k)


def decode(message: bytes) -> Batch:
    """Decode a whole message in pure Python (tests, tools, the edge); the cloud's hot path uses numpy."""
    header = decode_header(message)
    if header.version == 1:
        block = array("h")
        block.frombytes(message[header.samples_offset : header.samples_end])
        if sys.byteorder == "little":
            block.byteswap()
        channels = header.channels
        samples = tuple(tuple(block[i : i + channels]) for i in range(0, len(block), channels))
    else:
        samples = tuple(zip(*_decode_v2_columns(message, header), strict=True))
    return Batch(
        vehicle_id=header.vehicle_id,
        seq=header.seq,
        start_time_us=header.start_time_us,
        sample_period_us=header.sample_period_us,
        kind=header.kind,
        scales=header.scales,
        offsets=header.offsets,
        samples=samples,
        flags=header.flags,
        epoch=header.epoch,
    )


def _decode_v2_columns(message: bytes, header: Header) -> list[list[int]]:
    count, channels = header.sample_count, header.channels
    escapes = list(struct.unpack_from(f">{header.escape_count}H", message, header.samples_offset))
    stream = message[header.bitstream_offset : header.samples_end]
    bits = format(int.from_bytes(stream, "big"), f"0{8 * len(stream)}b") if stream else ""
    position = 0
    lows: list[list[int]] = []
    for coding in header.codings:
        k = coding.rice_k
        lows.append(
            [int(bits[position + i * k : position + (i + 1) * k], 2) for i in range(count)] if k else [0] * count
        )
        position += count * k
    highs: list[int] = []
    for _ in range(count * channels):
        one = bits.find("1", position)
        if one < 0:
            raise WireFormatError(f"truncated sample block: {len(highs)} of {count * channels} unary codes present")
        highs.append(one - position)
        position = one + 1
    check_bitstream_end(len(stream), position, bits.count("1", position))
    escaped = [i for i, high in enumerate(highs) if high >= ESCAPE]
    check_escapes(max(highs, default=0), len(escaped), header.escape_count, min(escapes, default=ESCAPE))
    for i, value in zip(escaped, escapes, strict=True):
        highs[i] = value
    columns = []
    for c, coding in enumerate(header.codings):
        zigzagged = [
            (high << coding.rice_k) | low for high, low in zip(highs[c * count : (c + 1) * count], lows[c], strict=True)
        ]
        if zigzagged and max(zigzagged) > 0xFFFF:
            raise WireFormatError(f"channel {c}: a residual exceeds 16 bits (escape value too large for k)")
        residuals = [(z >> 1) ^ -(z & 1) for z in zigzagged]
        if coding.predictor is Predictor.PREVIOUS:
            column, level = [], coding.base
            for residual in residuals:
                level += residual
                column.append(level)
        else:
            column = [coding.base + residual for residual in residuals]
        columns.append([((x + 32768) & 0xFFFF) - 32768 for x in column])
    return columns


def check_bitstream_end(stream_bytes: int, end_bit: int, ones_after: int) -> None:
    """Shared by every v2 decoder: after the last unary code only zero padding up to the byte boundary."""
    if ones_after:
        raise WireFormatError(f"lengths disagree: {ones_after} more unary codes than samples x channels")
    if stream_bytes != (end_bit + 7) // 8:
        raise WireFormatError(
            f"lengths disagree: the bit stream is {stream_bytes} bytes, its codes end in byte {(end_bit + 7) // 8}"
        )


def check_escapes(longest_code: int, escape_codes: int, escape_count: int, smallest_escape: int) -> None:
    """Shared by every v2 decoder: escape codes, the header's escape count and the escape list agree."""
    if longest_code > ESCAPE:
        raise WireFormatError(f"malformed sample block: a unary code of {longest_code} zeros (escape is {ESCAPE})")
    if escape_codes != escape_count:
        raise WireFormatError(f"lengths disagree: {escape_codes} escape codes, header announces {escape_count}")
    if smallest_escape < ESCAPE:
        raise WireFormatError(f"malformed sample block: escaped value {smallest_escape} is below {ESCAPE}")
