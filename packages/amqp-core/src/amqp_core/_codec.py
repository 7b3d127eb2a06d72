"""Primitive and field-table codec for AMQP 0-9-1 as RabbitMQ reads and writes it.

Theory of operation: field tables (message headers, queue arguments, server
properties) use the type tags of RabbitMQ's errata, which differ from the
0-9-1 specification's own table for the 16- and 32-bit integers:

====  =========================  ==========================================
tag   wire                        Python (decoding -> encoding)
====  =========================  ==========================================
t     boolean octet               bool
b     signed 8-bit                int
B     unsigned 8-bit              int
s     signed 16-bit               int
u     unsigned 16-bit             int
I     signed 32-bit               int (encoded for ints in int32 range)
i     unsigned 32-bit             int
l     signed 64-bit               int (encoded for ints outside int32, inside int64)
f     float 32                    float
d     float 64                    float (every Python float is encoded as d)
D     decimal: scale + int32      decimal.Decimal
S     long string                 str (UTF-8); bytes that are not UTF-8 stay bytes
A     array                       list (tuples encode as arrays too)
T     timestamp, u64 seconds      datetime (naive, UTC; aware ones are converted)
F     nested table                dict
V     void                        None
x     byte array                  bytes (bytes and bytearray are encoded as x)
====  =========================  ==========================================

Short strings decode with ``surrogateescape`` so that any bytes a peer sends
(routing keys from other clients may not be UTF-8) survive a round trip.

Every decoder takes ``(data, offset)`` and returns ``(value, new_offset)``;
malformed or truncated input raises :class:`InvalidFrameError`, an unknown
type tag :class:`InvalidFieldTypeException` (pika's name), and nothing else:
both are :class:`~amqp_core.exceptions.ProtocolSyntaxError`.  Nesting is
bounded (:data:`MAX_TABLE_DEPTH`) so a hostile peer cannot exhaust the stack.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .exceptions import (
    InvalidFieldTypeException,
    InvalidFrameError,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)

#: Deepest nesting of tables/arrays accepted from the wire or encoded.
MAX_TABLE_DEPTH = 100

_U8 = struct.Struct(">B")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DEC = struct.Struct(">Bi")

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

Buffer = bytes | bytearray | memoryview


# ---------------------------------------------------------------- strings


def encode_short_string(value: str | bytes, name: str) -> bytes:
    """Encode a short string (length octet + bytes).

    :param value: text (UTF-8 encoded) or raw bytes
    :param name: what the value is, for the error message
    :raises ShortStringTooLong: when the encoded value exceeds 255 bytes
    :raises TypeError: when ``value`` is neither str nor bytes
    """
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    if len(raw) > 255:
        raise ShortStringTooLong(f"{name}: {value!r}")
    return _U8.pack(len(raw)) + raw


def decode_short_string(data: Buffer, offset: int) -> tuple[str, int]:
    """Decode a short string at ``offset``.

    :returns: the text and the offset after it
    :raises InvalidFrameError: when the input is truncated
    """
    try:
        length = data[offset]
    except IndexError:
        raise InvalidFrameError("truncated short string") from None
    end = offset + 1 + length
    if end > len(data):
        raise InvalidFrameError("truncated short string")
    return bytes(data[offset + 1 : end]).decode("utf-8", "surrogateescape"), end


def encode_long_string(value: str | bytes, name: str) -> bytes:
    """Encode a long string (u32 length + bytes).

    :raises TypeError: when ``value`` is neither str nor bytes
    """
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    return _U32.pack(len(raw)) + raw


def decode_long_string(data: Buffer, offset: int) -> tuple[bytes, int]:
    """Decode a long string at ``offset`` as bytes.

    :raises InvalidFrameError: when the input is truncated
    """
    if offset + 4 > len(data):
        raise InvalidFrameError("truncated long string")
    (length,) = _U32.unpack_from(data, offset)
    start = offset + 4
    end = start + length
    if end > len(data):
        raise InvalidFrameError("truncated long string")
    return bytes(data[start:end]), end


# ---------------------------------------------------------------- encoding


def encode_table(value: Mapping[str, Any] | None) -> bytes:
    """Encode a field table, including its u32 length prefix.

    :param value: mapping of str keys to supported values; None is an empty table
    :raises UnsupportedAMQPFieldException: a value of an unsupported type (names the key)
    :raises ShortStringTooLong: a key longer than 255 bytes
    """
    if not value:
        if value is None or isinstance(value, Mapping):
            return b"\x00\x00\x00\x00"
        raise TypeError(f"field table must be a mapping, not {type(value).__name__}")
    pieces: list[bytes] = []
    _encode_table_body(pieces, value, 0, "")
    body = b"".join(pieces)
    return _U32.pack(len(body)) + body


def _encode_table_body(
    pieces: list[bytes], table: Mapping[str, Any], depth: int, path: str
) -> None:
    if not isinstance(table, Mapping):
        raise TypeError(f"field table must be a mapping, not {type(table).__name__}")
    if depth > MAX_TABLE_DEPTH:
        raise UnsupportedAMQPFieldException(f"{path}: tables nested deeper than {MAX_TABLE_DEPTH}")
    append = pieces.append
    for key, item in table.items():
        if not isinstance(key, str):
            raise UnsupportedAMQPFieldException(
                f"field table key {key!r} must be str, not {type(key).__name__}"
            )
        append(encode_short_string(key, f"field table key {key[:40]!r}"))
        _encode_value(pieces, item, depth, f"{path}{key}")


def _encode_value(pieces: list[bytes], value: Any, depth: int, path: str) -> None:
    append = pieces.append
    # bool before int: bool is an int subclass
    if value is True or value is False:
        append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, int):
        if _INT32_MIN <= value <= _INT32_MAX:
            append(b"I" + _I32.pack(value))
        elif _INT64_MIN <= value <= _INT64_MAX:
            append(b"l" + _I64.pack(value))
        else:
            raise UnsupportedAMQPFieldException(
                f"{path!r}: integer {value} does not fit in a signed 64-bit field"
            )
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            # fix: a lone surrogate used to escape as a bare UnicodeEncodeError naming no key
            raise UnsupportedAMQPFieldException(
                f"{path!r}: string is not encodable as UTF-8: {value!r}"
            ) from None
        append(b"S" + _U32.pack(len(raw)))
        append(raw)
    elif isinstance(value, bytes | bytearray):
        # byte strings travel as byte arrays, as pika sends them
        append(b"x" + _U32.pack(len(value)))
        append(bytes(value))
    elif isinstance(value, float):
        append(b"d" + _F64.pack(value))
    elif isinstance(value, Decimal):
        append(b"D" + _encode_decimal(value, path))
    elif isinstance(value, datetime):
        append(b"T" + _U64.pack(_timestamp(value, path)))
    elif isinstance(value, Mapping):
        inner: list[bytes] = []
        _encode_table_body(inner, value, depth + 1, f"{path}.")
        body = b"".join(inner)
        append(b"F" + _U32.pack(len(body)))
        append(body)
    elif isinstance(value, list | tuple):
        if depth + 1 > MAX_TABLE_DEPTH:
            raise UnsupportedAMQPFieldException(
                f"{path!r}: arrays nested deeper than {MAX_TABLE_DEPTH}"
            )
        inner = []
        for index, item in enumerate(value):
            _encode_value(inner, item, depth + 1, f"{path}[{index}]")
        body = b"".join(inner)
        append(b"A" + _U32.pack(len(body)))
        append(body)
    elif value is None:
        append(b"V")
    else:
        raise UnsupportedAMQPFieldException(
            f"{path!r}: values of type {type(value).__name__} cannot be encoded in a field table"
        )


def _encode_decimal(value: Decimal, path: str) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise UnsupportedAMQPFieldException(f"{path!r}: {value} is not a finite decimal")
    scale = -exponent if exponent < 0 else 0
    unscaled = int("".join(map(str, digits)) or "0") * (10**exponent if exponent > 0 else 1)
    if sign:
        unscaled = -unscaled
    if scale > 255 or not _INT32_MIN <= unscaled <= _INT32_MAX:
        raise UnsupportedAMQPFieldException(
            f"{path!r}: decimal {value} does not fit AMQP's scale octet + int32"
        )
    return _DEC.pack(scale, unscaled)


def _timestamp(value: datetime, path: str) -> int:
    if value.tzinfo is None:
        seconds = calendar.timegm(value.timetuple())
    else:
        seconds = int(value.timestamp())
    if seconds < 0:
        raise UnsupportedAMQPFieldException(f"{path!r}: timestamp before 1970 cannot be encoded")
    return seconds


# ---------------------------------------------------------------- decoding


def decode_table(data: Buffer, offset: int) -> tuple[dict[str, Any], int]:
    """Decode a field table (with its length prefix) at ``offset``.

    :returns: the table and the offset after it
    :raises InvalidFrameError: truncated input or nesting deeper than :data:`MAX_TABLE_DEPTH`
    :raises InvalidFieldTypeException: an unknown type tag
    """
    return _decode_table(data, offset, 0)


def _decode_table(data: Buffer, offset: int, depth: int) -> tuple[dict[str, Any], int]:
    if depth > MAX_TABLE_DEPTH:
        raise InvalidFrameError(f"field tables nested deeper than {MAX_TABLE_DEPTH}")
    if offset + 4 > len(data):
        raise InvalidFrameError("truncated field table")
    (length,) = _U32.unpack_from(data, offset)
    offset += 4
    end = offset + length
    if end > len(data):
        raise InvalidFrameError("truncated field table")
    result: dict[str, Any] = {}
    decoders = _DECODERS
    unpack_u32 = _U32.unpack_from
    unpack_i32 = _I32.unpack_from
    unpack_i64 = _I64.unpack_from
    try:
        while offset < end:
            key_end = offset + 1 + data[offset]
            key = str(data[offset + 1 : key_end], "utf-8", "surrogateescape")
            kind = data[key_end]
            offset = key_end + 1
            # hot path (message headers): the common tags inline, the rest by table
            if kind == 83:  # S: long string
                start = offset + 4
                offset = start + unpack_u32(data, offset)[0]
                raw = data[start:offset]
                try:
                    value: Any = str(raw, "utf-8")
                except UnicodeDecodeError:
                    value = bytes(raw)
            elif kind == 73:  # I: signed 32-bit
                value = unpack_i32(data, offset)[0]
                offset += 4
            elif kind == 116:  # t: boolean
                value = data[offset] != 0
                offset += 1
            elif kind == 108:  # l: signed 64-bit
                value = unpack_i64(data, offset)[0]
                offset += 8
            else:
                decoder = decoders.get(kind)
                if decoder is None:
                    raise InvalidFieldTypeException(f"unknown field type {chr(kind)!r}")
                value, offset = decoder(data, offset, end, depth)
            if offset > end:
                raise InvalidFrameError("field value overruns its table")
            result[key] = value
    except (struct.error, IndexError):
        raise InvalidFrameError("truncated field table") from None
    if offset != end:
        raise InvalidFrameError("field table overruns its declared length")
    return result, end


def _decode_value(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    if offset >= end:
        raise InvalidFrameError("truncated field value")
    kind = data[offset]
    offset += 1
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise InvalidFieldTypeException(f"unknown field type {chr(kind)!r}")
    value, offset = decoder(data, offset, end, depth)
    if offset > end:
        raise InvalidFrameError("field value overruns its table")
    return value, offset


def _fixed(codec: struct.Struct) -> Any:
    size = codec.size
    unpack_from = codec.unpack_from

    def decode(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
        if offset + size > end:
            raise InvalidFrameError("truncated field value")
        return unpack_from(data, offset)[0], offset + size

    return decode


def _dec_bool(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    if offset >= end:
        raise InvalidFrameError("truncated field value")
    return data[offset] != 0, offset + 1


def _dec_decimal(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    if offset + 5 > end:
        raise InvalidFrameError("truncated decimal")
    scale, unscaled = _DEC.unpack_from(data, offset)
    return Decimal(unscaled).scaleb(-scale), offset + 5


def _dec_longstr(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    raw, offset = decode_long_string(data, offset)
    try:
        return raw.decode("utf-8"), offset
    except UnicodeDecodeError:
        return raw, offset


def _dec_bytearray(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    return decode_long_string(data, offset)


def _dec_timestamp(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    if offset + 8 > end:
        raise InvalidFrameError("truncated timestamp")
    (seconds,) = _U64.unpack_from(data, offset)
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        raise InvalidFrameError(f"timestamp {seconds} out of range") from None
    return moment, offset + 8


def _dec_table(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    return _decode_table(data, offset, depth + 1)


def _dec_array(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    if depth + 1 > MAX_TABLE_DEPTH:
        raise InvalidFrameError(f"arrays nested deeper than {MAX_TABLE_DEPTH}")
    if offset + 4 > end:
        raise InvalidFrameError("truncated array")
    (length,) = _U32.unpack_from(data, offset)
    offset += 4
    array_end = offset + length
    if array_end > end:
        raise InvalidFrameError("truncated array")
    items = []
    while offset < array_end:
        item, offset = _decode_value(data, offset, array_end, depth + 1)
        items.append(item)
    return items, array_end


def _dec_void(data: Buffer, offset: int, end: int, depth: int) -> tuple[Any, int]:
    return None, offset


_DECODERS: dict[int, Any] = {
    ord("t"): _dec_bool,
    ord("b"): _fixed(_I8),
    ord("B"): _fixed(_U8),
    ord("s"): _fixed(_I16),
    ord("u"): _fixed(_U16),
    ord("I"): _fixed(_I32),
    ord("i"): _fixed(_U32),
    ord("l"): _fixed(_I64),
    ord("f"): _fixed(_F32),
    ord("d"): _fixed(_F64),
    ord("D"): _dec_decimal,
    ord("S"): _dec_longstr,
    ord("A"): _dec_array,
    ord("T"): _dec_timestamp,
    ord("F"): _dec_table,
    ord("V"): _dec_void,
    ord("x"): _dec_bytearray,
}
