"""Codec benchmark: our protocol core next to pika's and pamqp's codecs, same run, same machine.

Usage::

    python benchmarks/codec_bench.py            # full run (about a minute)
    python benchmarks/codec_bench.py --quick    # a few seconds

Theory of operation: every row is one workload run by the three codecs on the same data, in
the same process, taking turns (ours, pika, pamqp, ours ...); each figure is the best of
``--repeats`` runs, in messages per second, and the ratios ours/pika and ours/pamqp are printed
beside them.  No broker is needed.

The workloads (a "message" is its method, content header and body frames):

* ``publish 64 B + props, encode``: Basic.Publish with BasicProperties (content type, delivery
  mode, message id, app id and three headers) and a 64-byte body.  Ours goes through the real
  client path, :meth:`amqp_core.protocol.Connection.basic_publish` on a core put into the OPEN
  state by a scripted handshake, draining ``data_to_send()`` once per loop turn (every 100 small
  messages, or every large one).  pika: what its ``Channel.basic_publish`` does -- a
  ``spec.Basic.Publish`` and ``frame.Method`` / ``frame.Header`` / ``frame.Body``
  ``marshal()``.  pamqp:
  ``pamqp.frame.marshal`` of a ``commands.Basic.Publish``, ``ContentHeader`` and ``ContentBody``.
* ``deliver 64 B + props, decode``: the bytes of N Basic.Deliver messages, fed in reads.  Ours:
  ``receive_data`` per read (256 KiB, our stream's read size) and ``next_event()`` drained to
  ``NEED_DATA``, yielding one ``Delivery`` per message.  The peers get their best case: the same
  reads, frames cut out of the buffer by offset (one slice per frame, one trim per read) and
  passed to ``pika.frame.decode_frame`` + pika's own ``ContentFrameAssembler``, or to
  ``pamqp.frame.unmarshal`` + a minimal assembler.  (pika's real connection reads 4 KiB and
  re-slices its buffer after every frame, which is slower than what is measured here.)
* ``deliver 64 B, no props, decode``: the same without properties, to tell the cost of the
  frame and content machinery from that of the property and field-table decoding.
* ``publish 1 MiB, encode`` / ``deliver 1 MiB, decode``: the same with a 1 MiB body, split
  into 128 KiB frames (frame_max 131072).
* ``deliver 64 B + props, encode`` / ``publish 64 B + props, decode``: the directions a
  client does not use, for completeness, through our lowest-level public pieces
  (``protocol.frames`` encoders, ``FrameReader`` + ``spec`` decode + ``ContentAssembler``).

Time is wall time (``time.perf_counter``); ``--clock cpu`` uses this process's CPU time
(``time.process_time``) instead, which is steadier when other work shares the cores.

Figures, never assertions: this prints a table and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import pika.channel
import pika.frame
import pika.spec
from _common import describe_machine, fmt_rate, print_table, ratio, timed
from pamqp import body as pamqp_body
from pamqp import commands as pamqp_commands
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.io.fd_streams import READ_SIZE
from amqp_core.protocol import NEED_DATA, Connection
from amqp_core.protocol import events as ev
from amqp_core.protocol.channel import ContentAssembler
from amqp_core.protocol.frames import (
    FRAME_HEADER,
    FrameReader,
    encode_content,
    encode_method_frame,
)

FRAME_MAX = 131072
EXCHANGE = "bench.exchange"
ROUTING_KEY = "bench.routing.key"
CONSUMER_TAG = "ctag-bench-0123456789abcdef"
PROPS: dict[str, Any] = {
    "content_type": "application/json",
    "delivery_mode": 2,
    "message_id": "msg-5f0c2a7e-0001",
    "app_id": "codec-bench",
    "headers": {"x-trace-id": "4bf92f3577b34da6a3ce929d0e0e4736", "x-retry": 3,
                "x-source": "codec-bench"},
}
SMALL_BODY = bytes(range(64))
LARGE_BODY = bytes(1024 * 1024)


def turn_for(body: bytes) -> int:
    """Messages per simulated loop turn (one ``data_to_send`` / one join of the output):
    100 small ones, or one large one (a loop writes at least once per large message)."""
    return 100 if len(body) < 65536 else 1

Workload = Callable[[], float]  # runs N messages, returns seconds


# ---------------------------------------------------------------- ours


def open_core() -> Connection:
    """A core in the OPEN state with channel 1 open, by a scripted handshake."""
    core = Connection(credentials=PlainCredentials("guest", "guest"), heartbeat=0,
                      frame_max=FRAME_MAX)
    core.initiate()
    script = [
        encode_method_frame(0, spec.Connection.Start(
            server_properties={"product": "scripted"}, mechanisms=b"PLAIN", locales=b"en_US")),
        encode_method_frame(0, spec.Connection.Tune(
            channel_max=2047, frame_max=FRAME_MAX, heartbeat=0)),
        encode_method_frame(0, spec.Connection.OpenOk()),
    ]
    for data in script:
        core.receive_data(data)
        while core.next_event() is not NEED_DATA:
            pass
    if not core.is_open:
        raise RuntimeError(f"scripted handshake left the core {core.state}")
    channel = core.open_channel(1)
    core.receive_data(encode_method_frame(channel, spec.Channel.OpenOk()))
    event = core.next_event()
    if not isinstance(event, ev.ChannelOpened):
        raise RuntimeError(f"expected ChannelOpened, got {event!r}")
    core.data_to_send()
    return core


def ours_publish(count: int, body: bytes) -> Workload:
    properties = spec.BasicProperties(**PROPS)

    turn = turn_for(body)

    def run() -> float:
        core = open_core()
        publish = core.basic_publish
        drain = core.data_to_send

        def work() -> None:
            for start in range(0, count, turn):
                for _ in range(min(turn, count - start)):
                    publish(1, EXCHANGE, ROUTING_KEY, body, properties)
                drain()

        return timed(work)

    return run


def ours_deliver_bytes(count: int, body: bytes, properties: dict[str, Any] | None = None) -> bytes:
    """The wire bytes of ``count`` deliveries (our encoders; checked against pika's decoder)."""
    props = PROPS if properties is None else properties
    payload = b"".join(spec.BasicProperties(**props).encode())
    pieces: list[bytes] = []
    for tag in range(1, count + 1):
        method = spec.Basic.Deliver(consumer_tag=CONSUMER_TAG, delivery_tag=tag,
                                    redelivered=False, exchange=EXCHANGE,
                                    routing_key=ROUTING_KEY)
        pieces.append(encode_method_frame(1, method))
        pieces.extend(bytes(piece) for piece in encode_content(1, 60, payload, body, FRAME_MAX))
    return b"".join(pieces)


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours_deliver(stream: bytes, count: int) -> Workload:
    reads = chunks_of(stream, READ_SIZE)

    def run() -> float:
        core = open_core()
        receive = core.receive_data
        next_event = core.next_event
        delivery = ev.Delivery
        got = 0

        def work() -> None:
            nonlocal got
            for data in reads:
                receive(data)
                while True:
                    event = next_event()
                    if event is NEED_DATA:
                        break
                    if type(event) is delivery:
                        got += 1

        seconds = timed(work)
        if got != count:
            raise RuntimeError(f"ours decoded {got} deliveries, expected {count}")
        return seconds

    return run


def ours_deliver_encode(count: int, body: bytes) -> Workload:
    properties = spec.BasicProperties(**PROPS)

    turn = turn_for(body)

    def run() -> float:
        out: list[Any] = []

        def work() -> None:
            for start in range(0, count, turn):
                for tag in range(start, min(start + turn, count)):
                    method = spec.Basic.Deliver(CONSUMER_TAG, tag + 1, False, EXCHANGE,
                                                ROUTING_KEY)
                    out.append(encode_method_frame(1, method))
                    out.extend(encode_content(1, 60, b"".join(properties.encode()), body,
                                              FRAME_MAX))
                b"".join(out)
                out.clear()

        return timed(work)

    return run


def ours_publish_decode(stream: bytes, count: int) -> Workload:
    reads = chunks_of(stream, READ_SIZE)
    methods = spec.methods

    def run() -> float:
        reader = FrameReader(FRAME_MAX)
        assembler = ContentAssembler(1 << 30)
        got = 0

        def work() -> None:
            nonlocal got
            for data in reads:
                reader.feed(data)
                while True:
                    frame = reader.next_frame()
                    if frame is None:
                        break
                    frame_type, _channel, payload = frame
                    if frame_type == 1:
                        index = int.from_bytes(payload[:4], "big")
                        assembler.start(methods[index]().decode(payload, 4))
                    elif frame_type == 2:
                        if assembler.on_header(payload):
                            assembler.finish()
                            got += 1
                    elif frame_type == 3 and assembler.on_body(payload):
                        assembler.finish()
                        got += 1

        seconds = timed(work)
        if got != count:
            raise RuntimeError(f"ours decoded {got} publishes, expected {count}")
        return seconds

    return run


# ---------------------------------------------------------------- pika


def pika_encode(count: int, body: bytes, deliver: bool) -> Workload:
    properties = pika.spec.BasicProperties(**PROPS)
    chunk = FRAME_MAX - 8

    turn = turn_for(body)

    def run() -> float:
        out: list[bytes] = []

        def work() -> None:
            for start in range(0, count, turn):
                for tag in range(start, min(start + turn, count)):
                    if deliver:
                        method = pika.spec.Basic.Deliver(CONSUMER_TAG, tag + 1, False, EXCHANGE,
                                                         ROUTING_KEY)
                    else:
                        method = pika.spec.Basic.Publish(exchange=EXCHANGE,
                                                         routing_key=ROUTING_KEY)
                    length = len(body)
                    out.append(pika.frame.Method(1, method).marshal())
                    out.append(pika.frame.Header(1, length, properties).marshal())
                    for offset in range(0, length, chunk):
                        out.append(pika.frame.Body(1, body[offset : offset + chunk]).marshal())
                b"".join(out)
                out.clear()

        return timed(work)

    return run


def split_frames(stream: bytes, read_size: int) -> Callable[[], Any]:
    """Yield complete frames (as bytes) from ``stream`` delivered in reads of ``read_size``:
    the peers' best case (offset parsing, one slice per frame, one trim per read)."""
    reads = chunks_of(stream, read_size)
    unpack = FRAME_HEADER.unpack_from

    def frames() -> Any:
        buffer = b""
        for data in reads:
            buffer = buffer + data if buffer else data
            position = 0
            size = len(buffer)
            while size - position >= 8:
                end = position + 8 + unpack(buffer, position)[2]
                if end > size:
                    break
                yield buffer[position:end]
                position = end
            buffer = buffer[position:]

    return frames


def pika_decode(stream: bytes, count: int) -> Workload:
    frames = split_frames(stream, READ_SIZE)
    decode_frame = pika.frame.decode_frame

    def run() -> float:
        assembler = pika.channel.ContentFrameAssembler()
        process = assembler.process
        got = 0

        def work() -> None:
            nonlocal got
            for raw in frames():
                _consumed, frame_value = decode_frame(raw)
                if process(frame_value) is not None:
                    got += 1

        seconds = timed(work)
        if got != count:
            raise RuntimeError(f"pika decoded {got} messages, expected {count}")
        return seconds

    return run


# ---------------------------------------------------------------- pamqp


def pamqp_encode(count: int, body: bytes, deliver: bool) -> Workload:
    properties = pamqp_commands.Basic.Properties(**PROPS)
    marshal = pamqp_frame.marshal
    chunk = FRAME_MAX - 8

    turn = turn_for(body)

    def run() -> float:
        out: list[bytes] = []

        def work() -> None:
            for start in range(0, count, turn):
                for tag in range(start, min(start + turn, count)):
                    method: Any
                    if deliver:
                        method = pamqp_commands.Basic.Deliver(CONSUMER_TAG, tag + 1, False,
                                                              EXCHANGE, ROUTING_KEY)
                    else:
                        method = pamqp_commands.Basic.Publish(exchange=EXCHANGE,
                                                              routing_key=ROUTING_KEY)
                    length = len(body)
                    out.append(marshal(method, 1))
                    out.append(marshal(pamqp_header.ContentHeader(0, length, properties), 1))
                    for offset in range(0, length, chunk):
                        out.append(marshal(pamqp_body.ContentBody(body[offset : offset + chunk]),
                                           1))
                b"".join(out)
                out.clear()

        return timed(work)

    return run


def pamqp_decode(stream: bytes, count: int) -> Workload:
    frames = split_frames(stream, READ_SIZE)
    unmarshal = pamqp_frame.unmarshal
    content_header = pamqp_header.ContentHeader

    def run() -> float:
        got = 0

        def work() -> None:
            # the smallest assembler: method -> header -> body frames until body_size
            nonlocal got
            expected = received = 0
            parts: list[bytes] = []
            for raw in frames():
                value: Any = unmarshal(raw)[2]
                if value.__class__ is content_header:
                    expected, received = value.body_size, 0
                    parts = []
                    if not expected:
                        got += 1
                elif value.name == "ContentBody":
                    parts.append(value.value)
                    received += len(value.value)
                    if received >= expected:
                        b"".join(parts) if len(parts) > 1 else parts[0]
                        got += 1

        seconds = timed(work)
        if got != count:
            raise RuntimeError(f"pamqp decoded {got} messages, expected {count}")
        return seconds

    return run


# ---------------------------------------------------------------- checks and main


def check_equivalence() -> None:
    """Our encoders' output must decode to the same message in pika (else the race is unfair)."""
    core = open_core()
    core.basic_publish(1, EXCHANGE, ROUTING_KEY, SMALL_BODY,
                       spec.BasicProperties(**PROPS))
    data = core.data_to_send()
    decoded = []
    while data:
        consumed, frame_value = pika.frame.decode_frame(data)
        decoded.append(frame_value)
        data = data[consumed:]
    method, header, body = decoded
    assert method.method.exchange == EXCHANGE and method.method.routing_key == ROUTING_KEY
    assert header.properties.headers == PROPS["headers"], header.properties.headers
    assert header.properties.message_id == PROPS["message_id"]
    assert body.fragment == SMALL_BODY
    stream = ours_deliver_bytes(1, SMALL_BODY)
    consumed, frame_value = pika.frame.decode_frame(stream)
    assert frame_value.method.consumer_tag == CONSUMER_TAG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 3 repeats")
    parser.add_argument("--count", type=int, help="messages per run for the 64 B rows")
    parser.add_argument("--large-count", type=int, help="messages per run for the 1 MiB rows")
    parser.add_argument("--repeats", type=int, help="runs per figure (the best is kept)")
    parser.add_argument("--only", choices=["ours", "all"], default="all",
                        help="'ours' skips the peers (for profiling)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time.perf_counter (default) or time.process_time (steadier on a "
                             "busy machine)")
    args = parser.parse_args(argv)
    _common.CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    count = args.count or (5_000 if args.quick else 50_000)
    large = args.large_count or (20 if args.quick else 100)
    repeats = args.repeats or (3 if args.quick else 5)

    check_equivalence()
    print(describe_machine())
    print(f"# {count} small / {large} large messages per run, best of {repeats}; "
          f"reads of {READ_SIZE} bytes; frame_max {FRAME_MAX}; {args.clock} clock")

    small_deliveries = ours_deliver_bytes(count, SMALL_BODY)
    bare_deliveries = ours_deliver_bytes(count, SMALL_BODY, {})
    large_deliveries = ours_deliver_bytes(large, LARGE_BODY)
    small_publishes = b"".join(
        pika.frame.Method(1, pika.spec.Basic.Publish(exchange=EXCHANGE,
                                                     routing_key=ROUTING_KEY)).marshal()
        + pika.frame.Header(1, len(SMALL_BODY), pika.spec.BasicProperties(**PROPS)).marshal()
        + pika.frame.Body(1, SMALL_BODY).marshal()
        for _ in range(count)
    )

    rows_spec: list[tuple[str, int, Workload, Workload, Workload]] = [
        ("publish 64 B + props, encode", count, ours_publish(count, SMALL_BODY),
         pika_encode(count, SMALL_BODY, False), pamqp_encode(count, SMALL_BODY, False)),
        ("deliver 64 B + props, decode", count, ours_deliver(small_deliveries, count),
         pika_decode(small_deliveries, count), pamqp_decode(small_deliveries, count)),
        ("deliver 64 B, no props, decode", count, ours_deliver(bare_deliveries, count),
         pika_decode(bare_deliveries, count), pamqp_decode(bare_deliveries, count)),
        ("publish 1 MiB, encode", large, ours_publish(large, LARGE_BODY),
         pika_encode(large, LARGE_BODY, False), pamqp_encode(large, LARGE_BODY, False)),
        ("deliver 1 MiB, decode", large, ours_deliver(large_deliveries, large),
         pika_decode(large_deliveries, large), pamqp_decode(large_deliveries, large)),
        ("deliver 64 B + props, encode*", count, ours_deliver_encode(count, SMALL_BODY),
         pika_encode(count, SMALL_BODY, True), pamqp_encode(count, SMALL_BODY, True)),
        ("publish 64 B + props, decode*", count, ours_publish_decode(small_publishes, count),
         pika_decode(small_publishes, count), pamqp_decode(small_publishes, count)),
    ]
    rows = []
    for name, n, ours, theirs_pika, theirs_pamqp in rows_spec:
        contenders = [ours] if args.only == "ours" else [ours, theirs_pika, theirs_pamqp]
        # interleaved (ours, pika, pamqp, ours, ...) so a drift in machine load hits all three
        best = [min(times) for times in zip(*(
            [run() for run in contenders] for _ in range(repeats)
        ), strict=True)]
        ours_rate = n / best[0]
        pika_rate = n / best[1] if len(best) > 1 else None
        pamqp_rate = n / best[2] if len(best) > 2 else None
        rows.append([name, fmt_rate(ours_rate), fmt_rate(pika_rate), fmt_rate(pamqp_rate),
                     ratio(ours_rate, pika_rate), ratio(ours_rate, pamqp_rate)])
        print(f"# {name}: done", file=sys.stderr, flush=True)
    print_table(
        "Codec throughput, messages/s (higher is better)",
        ["workload", "ours", "pika", "pamqp", "ours/pika", "ours/pamqp"],
        rows,
    )
    print("* a direction the client never uses; ours through the low-level protocol pieces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
