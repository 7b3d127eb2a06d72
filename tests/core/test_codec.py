"""Field tables and strings (``amqp_core._codec``): hand-built bytes in, Python values out.

Every type tag is decoded from bytes written by hand (not by our own encoder), every Python type
is encoded and checked byte for byte, and hypothesis checks that what we encode decodes back.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqp_core import _codec, spec
from amqp_core._codec import (
    MAX_TABLE_DEPTH,
    decode_long_string,
    decode_short_string,
    decode_table,
    encode_long_string,
    encode_short_string,
    encode_table,
)
from amqp_core.exceptions import (
    InvalidFieldTypeException,
    InvalidFrameError,
    ProtocolSyntaxError,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)


def table_bytes(*items: tuple[bytes, bytes]) -> bytes:
    """A field table built by hand: ``(key, tag + value bytes)`` pairs."""
    body = b"".join(bytes((len(key),)) + key + value for key, value in items)
    return struct.pack(">I", len(body)) + body


def long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


# --------------------------------------------------------------------------- decoding, per tag

DECODE_CASES: list[tuple[str, bytes, Any, type]] = [
    ("t-true", b"t\x01", True, bool),
    ("t-false", b"t\x00", False, bool),
    ("t-nonzero", b"t\x07", True, bool),
    ("b", b"b\xff", -1, int),
    ("b-max", b"b\x7f", 127, int),
    ("B", b"B\xff", 255, int),
    ("s", b"s\xff\xfe", -2, int),
    ("u", b"u\xff\xfe", 65534, int),
    ("I", b"I\xff\xff\xff\xff", -1, int),
    ("I-min", b"I\x80\x00\x00\x00", -(2**31), int),
    ("i", b"i\xff\xff\xff\xff", 2**32 - 1, int),
    ("l", b"l" + struct.pack(">q", -(2**63)), -(2**63), int),
    ("l-minus-one", b"l\xff\xff\xff\xff\xff\xff\xff\xff", -1, int),
    ("f", b"f" + struct.pack(">f", 1.5), 1.5, float),
    ("d", b"d" + struct.pack(">d", -2.25), -2.25, float),
    ("D", b"D\x02" + struct.pack(">i", 12345), Decimal("123.45"), Decimal),
    ("D-negative", b"D\x03" + struct.pack(">i", -5), Decimal("-0.005"), Decimal),
    ("D-scale0", b"D\x00" + struct.pack(">i", 7), Decimal(7), Decimal),
    ("S", b"S" + long(b"hello"), "hello", str),
    ("S-utf8", b"S" + long("h\u00e9".encode()), "h\u00e9", str),
    ("S-not-utf8", b"S" + long(b"\xff\xfe"), b"\xff\xfe", bytes),
    ("S-empty", b"S" + long(b""), "", str),
    (
        "A",
        b"A" + long(b"I\x00\x00\x00\x01" + b"S" + long(b"xy") + b"V" + b"t\x01"),
        [1, "xy", None, True],
        list,
    ),
    ("A-empty", b"A" + long(b""), [], list),
    ("T", b"T" + struct.pack(">Q", 1_700_000_000), datetime(2023, 11, 14, 22, 13, 20), datetime),
    ("T-epoch", b"T" + bytes(8), datetime(1970, 1, 1), datetime),
    ("F", b"F" + table_bytes((b"a", b"B\x01"), (b"b", b"V"))[0:], {"a": 1, "b": None}, dict),
    ("F-empty", b"F" + bytes(4), {}, dict),
    ("V", b"V", None, type(None)),
    ("x", b"x" + long(b"\x00\xff"), b"\x00\xff", bytes),  # pika decodes x as bytes
    ("x-empty", b"x" + long(b""), b"", bytes),
]


@pytest.mark.parametrize(
    ("value_bytes", "expected", "expected_type"),
    [case[1:] for case in DECODE_CASES],
    ids=[case[0] for case in DECODE_CASES],
)
def test_decode_each_type_tag(value_bytes: bytes, expected: Any, expected_type: type) -> None:
    data = table_bytes((b"key", value_bytes))
    table, offset = decode_table(data, 0)
    assert offset == len(data)
    assert table == {"key": expected}
    assert type(table["key"]) is expected_type
    # at an offset, followed by trailing bytes
    table, offset = decode_table(b"\xaa\xbb" + data + b"trailing", 2)
    assert table == {"key": expected} and offset == 2 + len(data)


def test_every_tag_is_covered() -> None:
    tags = {case[1][:1].decode() for case in DECODE_CASES}
    assert tags == set("tbBsuIilfdDSATFVx")
    assert {chr(tag) for tag in _codec._DECODERS} == tags


def test_decode_many_keys_keeps_order() -> None:
    data = table_bytes((b"z", b"B\x01"), (b"a", b"B\x02"), (b"m", b"B\x03"))
    table, _ = decode_table(data, 0)
    assert list(table.items()) == [("z", 1), ("a", 2), ("m", 3)]


def test_decode_key_that_is_not_utf8_survives_a_round_trip() -> None:
    data = table_bytes((b"\xffk", b"V"))
    table, _ = decode_table(data, 0)
    assert table == {"\udcffk": None}
    assert encode_table(table) == data


def test_decode_from_memoryview_and_bytearray() -> None:
    data = table_bytes((b"k", b"S" + long(b"v")), (b"x", b"x" + long(b"ab")))
    for buffer in (bytearray(data), memoryview(data)):
        table, _ = decode_table(buffer, 0)
        assert table == {"k": "v", "x": b"ab"}


def test_unknown_type_tag_is_a_protocol_syntax_error() -> None:
    data = table_bytes((b"k", b"Z\x00"))
    with pytest.raises(InvalidFieldTypeException, match="'Z'"):
        decode_table(data, 0)
    assert issubclass(InvalidFieldTypeException, ProtocolSyntaxError)


# --------------------------------------------------------------------------- truncated input

TRUNCATED_VALUES = [
    b"t", b"b", b"B", b"s\x00", b"u\x00", b"I\x00\x00\x00", b"i\x00", b"l\x00\x00\x00\x00",
    b"f\x00\x00", b"d\x00\x00\x00\x00\x00\x00\x00", b"D\x01\x00\x00\x00", b"S\x00\x00\x00\x05ab",
    b"S\x00\x00", b"A\x00\x00\x00\x05I\x00", b"A\x00\x00\x00\x06I\x00\x00\x00\x01S",
    b"T\x00\x00\x00", b"F\x00\x00\x00\x09\x01k", b"x\x00\x00\x00\x09", b"",
]


@pytest.mark.parametrize("value_bytes", TRUNCATED_VALUES, ids=repr)
def test_truncated_value_inside_a_consistent_table(value_bytes: bytes) -> None:
    # the outer length covers exactly what is there: the value itself is cut short
    with pytest.raises(InvalidFrameError):
        decode_table(table_bytes((b"k", value_bytes)), 0)


def test_truncated_key() -> None:
    body = b"\x09abc"
    with pytest.raises(InvalidFrameError):
        decode_table(struct.pack(">I", len(body)) + body, 0)


def test_every_prefix_of_a_table_is_truncated_input() -> None:
    data = encode_table(
        {"a": 1, "b": [1.5, "x", {"c": None}], "d": datetime(2000, 1, 1), "e": Decimal("1.5")}
    )
    for cut in range(len(data)):
        with pytest.raises(InvalidFrameError):
            decode_table(data[:cut], 0)


def test_array_longer_than_its_table() -> None:
    # the array claims 100 bytes; the table around it holds fewer
    with pytest.raises(InvalidFrameError):
        decode_table(table_bytes((b"k", b"A\x00\x00\x00\x64" + b"V" * 3)) + b"V" * 200, 0)


def test_truncated_strings() -> None:
    with pytest.raises(InvalidFrameError):
        decode_short_string(b"", 0)
    with pytest.raises(InvalidFrameError):
        decode_short_string(b"\x05abc", 0)
    with pytest.raises(InvalidFrameError):
        decode_long_string(b"\x00\x00", 0)
    with pytest.raises(InvalidFrameError):
        decode_long_string(b"\x00\x00\x00\x05abc", 0)
    assert decode_short_string(b"\x03abcd", 0) == ("abc", 4)
    assert decode_long_string(b"\x00\x00\x00\x03abcd", 0) == (b"abc", 7)


@given(st.binary(max_size=300))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_decode_or_raise_a_syntax_error(data: bytes) -> None:
    try:
        table, offset = decode_table(data, 0)
    except ProtocolSyntaxError:
        return
    assert isinstance(table, dict)
    assert offset <= len(data)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_arbitrary_table_bodies_decode_or_raise_a_syntax_error(body: bytes) -> None:
    # a consistent length prefix, so the decoder has to look inside
    try:
        decode_table(struct.pack(">I", len(body)) + body, 0)
    except ProtocolSyntaxError:
        pass


# --------------------------------------------------------------------------- encoding, per type


ENCODE_CASES: list[tuple[str, Any, bytes]] = [
    ("true", True, b"t\x01"),
    ("false", False, b"t\x00"),
    ("zero", 0, b"I\x00\x00\x00\x00"),
    ("minus-one", -1, b"I\xff\xff\xff\xff"),
    ("int32-max", 2**31 - 1, b"I\x7f\xff\xff\xff"),
    ("int32-min", -(2**31), b"I\x80\x00\x00\x00"),
    ("int32-max+1", 2**31, b"l" + struct.pack(">q", 2**31)),
    ("int32-min-1", -(2**31) - 1, b"l" + struct.pack(">q", -(2**31) - 1)),
    ("int64-max", 2**63 - 1, b"l" + struct.pack(">q", 2**63 - 1)),
    ("int64-min", -(2**63), b"l" + struct.pack(">q", -(2**63))),
    ("float", 1.5, b"d" + struct.pack(">d", 1.5)),
    ("decimal", Decimal("1.23"), b"D\x02" + struct.pack(">i", 123)),
    ("decimal-negative", Decimal("-0.5"), b"D\x01" + struct.pack(">i", -5)),
    ("decimal-positive-exponent", Decimal("1E+2"), b"D\x00" + struct.pack(">i", 100)),
    ("str", "h\u00e9", b"S" + long("h\u00e9".encode())),
    ("bytes", b"\xff\x00", b"x" + long(b"\xff\x00")),  # pika sends bytes as x
    ("bytearray", bytearray(b"\xff\x00"), b"x" + long(b"\xff\x00")),
    ("list", [1, "a"], b"A" + long(b"I\x00\x00\x00\x01" + b"S" + long(b"a"))),
    ("tuple", (None,), b"A" + long(b"V")),
    ("empty-list", [], b"A" + long(b"")),
    ("datetime", datetime(2023, 11, 14, 22, 13, 20), b"T" + struct.pack(">Q", 1_700_000_000)),
    (
        "datetime-aware",
        datetime(2023, 11, 15, 0, 13, 20, tzinfo=timezone(timedelta(hours=2))),
        b"T" + struct.pack(">Q", 1_700_000_000),
    ),
    ("dict", {"a": None}, b"F" + long(b"\x01aV")),
    ("empty-dict", {}, b"F" + long(b"")),
    ("none", None, b"V"),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [case[1:] for case in ENCODE_CASES],
    ids=[case[0] for case in ENCODE_CASES],
)
def test_encode_each_python_type(value: Any, expected: bytes) -> None:
    assert encode_table({"k": value}) == table_bytes((b"k", expected))


def test_encode_empty_and_none_tables() -> None:
    assert encode_table(None) == b"\x00\x00\x00\x00"
    assert encode_table({}) == b"\x00\x00\x00\x00"


@pytest.mark.parametrize("value", [[], [("a", 1)], "text", 5])
def test_encode_table_of_a_non_mapping_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="mapping"):
        encode_table(value)


@pytest.mark.parametrize("value", [-1, -(2**40), 2**63 - 1, -(2**63), 2**31, -(2**31) - 1])
def test_x_delay_survives_a_round_trip_signed(value: int) -> None:
    # ``x-delay: -1`` must come back as -1, not 4294967295 or 2**64-1
    table, _ = decode_table(encode_table({"x-delay": value}), 0)
    assert table == {"x-delay": value}
    props = spec.BasicProperties(headers={"x-delay": value})
    assert spec.BasicProperties().decode(b"".join(props.encode())).headers == {"x-delay": value}


@pytest.mark.parametrize(
    ("table", "path"),
    [
        ({"my-key": object()}, "my-key"),
        ({"my-key": {1, 2}}, "my-key"),
        ({"my-key": 1 + 2j}, "my-key"),
        ({"outer": {"inner": object()}}, "outer.inner"),
        ({"arr": [1, object()]}, "arr[1]"),
        ({"big": 2**63}, "big"),
        ({"small": -(2**63) - 1}, "small"),
        ({"dec": Decimal("NaN")}, "dec"),
        ({"dec": Decimal("1E-300")}, "dec"),
        ({"dec": Decimal(2**40)}, "dec"),
        ({"when": datetime(1960, 1, 1)}, "when"),
    ],
    ids=repr,
)
def test_unsupported_value_names_the_key(table: dict[str, Any], path: str) -> None:
    with pytest.raises(UnsupportedAMQPFieldException) as info:
        encode_table(table)
    assert path in str(info.value)


def test_non_str_key_is_unsupported() -> None:
    with pytest.raises(UnsupportedAMQPFieldException, match="must be str"):
        encode_table({1: "x"})  # type: ignore[dict-item]


def test_str_value_that_is_not_encodable_names_the_key() -> None:
    with pytest.raises(UnsupportedAMQPFieldException) as info:
        encode_table({"bad-text": "\udcff"})
    assert "bad-text" in str(info.value)


# --------------------------------------------------------------------------- short strings


def test_short_string_limits() -> None:
    assert encode_short_string("x" * 255, "name") == b"\xff" + b"x" * 255
    assert encode_short_string("\u00e9" * 127, "name")[0] == 254
    with pytest.raises(ShortStringTooLong, match="name"):
        encode_short_string("x" * 256, "name")
    with pytest.raises(ShortStringTooLong):
        encode_short_string("\u00e9" * 128, "name")  # 256 bytes in UTF-8
    with pytest.raises(ShortStringTooLong):
        encode_short_string(b"x" * 256, "name")
    with pytest.raises(TypeError, match="name must be str or bytes"):
        encode_short_string(5, "name")  # type: ignore[arg-type]


def test_table_key_over_255_bytes() -> None:
    with pytest.raises(ShortStringTooLong):
        encode_table({"k" * 256: 1})
    assert decode_table(encode_table({"k" * 255: 1}), 0)[0] == {"k" * 255: 1}


def test_short_string_round_trips_any_bytes() -> None:
    raw = bytes(range(256))[:255]
    text, end = decode_short_string(bytes((255,)) + raw, 0)
    assert end == 256
    assert encode_short_string(text, "x") == bytes((255,)) + raw


def test_long_strings() -> None:
    assert encode_long_string("h\u00e9", "x") == long("h\u00e9".encode())
    assert encode_long_string(bytearray(b"ab"), "x") == long(b"ab")
    with pytest.raises(TypeError, match="x must be str or bytes"):
        encode_long_string(1, "x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- nesting


def nested_tables(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"n": value}
    return value


def nested_arrays(depth: int) -> dict[str, Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


def wire_nested_tables(depth: int) -> bytes:
    """``nested_tables(depth)`` written by hand."""
    inner = b"F" + long(b"")
    for _ in range(depth - 1):
        inner = b"F" + long(b"\x01n" + inner)
    return table_bytes((b"n", inner))


def wire_nested_arrays(depth: int) -> bytes:
    """``nested_arrays(depth)`` written by hand."""
    inner = b"A" + long(b"")
    for _ in range(depth - 1):
        inner = b"A" + long(inner)
    return table_bytes((b"a", inner))


@pytest.mark.parametrize(
    ("build", "wire"), [(nested_tables, wire_nested_tables), (nested_arrays, wire_nested_arrays)]
)
def test_nesting_bound(build: Any, wire: Any) -> None:
    # the deepest accepted structure round-trips; one more level is refused both ways
    deepest = build(MAX_TABLE_DEPTH)
    data = encode_table(deepest)
    assert data == wire(MAX_TABLE_DEPTH)
    assert decode_table(data, 0)[0] == deepest
    with pytest.raises(UnsupportedAMQPFieldException, match="nested"):
        encode_table(build(MAX_TABLE_DEPTH + 1))
    with pytest.raises(InvalidFrameError, match="nested"):
        decode_table(wire(MAX_TABLE_DEPTH + 1), 0)


@pytest.mark.parametrize("wire", [wire_nested_tables, wire_nested_arrays])
def test_hostile_deep_nesting_is_refused_without_exhausting_the_stack(wire: Any) -> None:
    with pytest.raises(InvalidFrameError, match="nested"):
        decode_table(wire(5000), 0)


# --------------------------------------------------------------------------- hypothesis round trips

keys = st.text(max_size=20).filter(lambda k: len(k.encode("utf-8", "surrogatepass")) <= 255)
safe_text = st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=40
)
int32 = st.integers(-(2**31), 2**31 - 1)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.builds(lambda unscaled, scale: Decimal(unscaled).scaleb(-scale), int32, st.integers(0, 20)),
    safe_text,
    st.binary(max_size=40),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=0)),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=20,
)
tables = st.dictionaries(keys, values, max_size=8)


@given(tables)
@settings(max_examples=200, deadline=None)
def test_field_table_round_trip(table: dict[str, Any]) -> None:
    data = encode_table(table)
    decoded, offset = decode_table(data, 0)
    assert offset == len(data)
    assert decoded == table
    # re-encoding what we decoded gives the same bytes
    assert encode_table(decoded) == data


@given(tables)
@settings(max_examples=60, deadline=None)
def test_field_table_round_trip_inside_message_headers(table: dict[str, Any]) -> None:
    props = spec.BasicProperties(headers=table)
    decoded = spec.BasicProperties().decode(b"".join(props.encode()))
    assert decoded.headers == table


@given(st.binary(max_size=60))
def test_bytes_and_bytearray_values_come_back_as_bytes(raw: bytes) -> None:
    for value in (raw, bytearray(raw)):
        (decoded,) = decode_table(encode_table({"k": value}), 0)[0].values()
        assert decoded == raw and type(decoded) is bytes


@given(st.binary(max_size=60))
def test_long_strings_come_back_as_str_when_utf8_else_bytes(raw: bytes) -> None:
    (value,) = decode_table(table_bytes((b"k", b"S" + long(raw))), 0)[0].values()
    try:
        assert value == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert value == raw


@given(st.floats(allow_nan=True, width=32))
def test_float32_decodes_exactly(number: float) -> None:
    (value,) = decode_table(table_bytes((b"f", b"f" + struct.pack(">f", number))), 0)[0].values()
    assert value == number or (math.isnan(value) and math.isnan(number))


def test_aware_and_naive_datetimes_agree() -> None:
    naive = datetime(2024, 2, 29, 12, 0, 0)
    aware = naive.replace(tzinfo=UTC)
    assert encode_table({"t": naive}) == encode_table({"t": aware})
