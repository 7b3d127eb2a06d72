"""``amqp-core bench``: the benchmark scenarios, run through any installed adapter.

Theory of operation: a *run* is one scenario on one adapter, with its own
connection and its own exclusive queue (gone when the connection closes),
bounded by ``--timeout``.  The scenarios have the shapes of
``benchmarks/select_bench.py``:

* ``publish``: N messages without confirms, timed from the first publish
  until a passive ``queue_declare`` on the same channel reports N messages;
* ``confirm``: N messages in confirm mode with at most ``window`` unconfirmed,
  timed to the last confirm;
* ``consume``: the queue is filled first (untimed), then ``basic_qos`` and a
  consumer acking each message, timed to the N-th delivery;
* ``latency``: publish to a queue the same connection consumes (auto-ack), the
  next publish when the previous message arrived; p50 and p99 of publish ->
  deliver.

``blocking`` runs on :class:`~amqp_core.adapters.blocking_connection.BlockingConnection`
(:func:`_run_blocking`).  Every other adapter runs its callback connection class
on a fresh loop of its own through the conformance kit's loop harness
(:func:`amqp_core.testing.harness.make_harness`; :class:`_CallbackRun`), which
bounds every wait: the same scenario code serves select, asyncio, tornado,
gevent, twisted and third-party adapters.  The harness's ``run_until`` polls
its predicate on the loop; runs call ``notify()`` when done so the loop
stops at once.  A run that fails is reported in the table and as one line on
stderr; the others go on.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import spec
from ..adapters.blocking_connection import BlockingConnection
from ..parameters import Parameters
from ..plugins import get_adapter, installed_adapters
from ._commands import Context
from ._errors import EXIT_FAILURE, EXIT_OK, UsageError, classify
from ._output import Progress, format_table
from ._parser import SCENARIOS

__all__ = ["BenchConfig", "Outcome", "ProgressSink", "bench", "run_scenario"]

#: Messages published per loop turn (callback adapters) or between progress updates.
BATCH = 1000
#: Seconds a callback run waits for its connection to close.
_CLOSE_TIMEOUT = 10.0
#: Seconds the consumer generator of the blocking runs waits before re-checking the deadline.
_POLL = 0.5

#: ``advance(units)``: what runs call to report progress.
ProgressSink = Callable[[int], None]


@dataclass(frozen=True)
class BenchConfig:
    """The sizes of the runs.

    :param count: messages of the publish, confirm and consume runs
    :param round_trips: round trips of the latency run
    :param size: body size in bytes
    :param window: unconfirmed messages allowed in flight
    :param prefetch: consumer prefetch count (0: unlimited)
    :param timeout: bound on one run, in seconds
    """

    count: int
    round_trips: int
    size: int
    window: int
    prefetch: int
    timeout: float

    def units(self, scenario: str) -> int:
        """Progress units of a ``scenario`` run (the consume run also counts its filling)."""
        if scenario == "latency":
            return self.round_trips
        return self.count * 2 if scenario == "consume" else self.count


@dataclass
class Outcome:
    """The result of one run: a rate and CPU per message, or latencies, or an error."""

    adapter: str
    scenario: str
    rate: float | None = None
    cpu_us: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    error: BaseException | None = None

    def summary(self) -> str:
        """One line for the progress display."""
        if self.error is not None:
            return f"failed ({type(self.error).__name__})"
        if self.scenario == "latency":
            return f"p50 {self.p50_us:,.0f} us, p99 {self.p99_us:,.0f} us"
        return f"{self.rate:,.0f} msg/s, {self.cpu_us:,.1f} us CPU/msg"


class _Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def throughput(self, count: int) -> tuple[float, float]:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return count / max(wall, 1e-9), cpu / count * 1e6


def _latencies(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e6, p99 * 1e6


def _check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"{what} did not finish in time")


# ---------------------------------------------------------------- blocking


def _blocking_fill(
    channel: Any, queue: str, count: int, body: bytes, advance: ProgressSink, deadline: float
) -> None:
    publish = channel.basic_publish
    for start in range(0, count, BATCH):
        for _ in range(min(BATCH, count - start)):
            publish("", queue, body)
        advance(min(BATCH, count - start))
        _check_deadline(deadline, "publishing")
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        _check_deadline(deadline, "waiting for the queue to fill")


def _run_blocking(
    params: Parameters, scenario: str, config: BenchConfig, advance: ProgressSink,
    outcome: Outcome,
) -> None:
    deadline = time.monotonic() + config.timeout
    body = b"x" * config.size
    with BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        if scenario == "publish":
            clock = _Clock()
            _blocking_fill(channel, queue, config.count, body, advance, deadline)
            outcome.rate, outcome.cpu_us = clock.throughput(config.count)
        elif scenario == "confirm":
            clock = _Clock()
            left = max(deadline - time.monotonic(), 0.001)
            with channel.confirm_window(config.window, timeout=left):
                for start in range(0, config.count, BATCH):
                    for _ in range(min(BATCH, config.count - start)):
                        channel.basic_publish("", queue, body)
                    advance(min(BATCH, config.count - start))
                    _check_deadline(deadline, "confirmed publishing")
            outcome.rate, outcome.cpu_us = clock.throughput(config.count)
        elif scenario == "consume":
            _blocking_fill(channel, queue, config.count, body, advance, deadline)
            if config.prefetch:
                channel.basic_qos(prefetch_count=config.prefetch)
            clock = _Clock()
            received = 0
            for method, _properties, _body in channel.consume(queue, inactivity_timeout=_POLL):
                if method is None:
                    _check_deadline(deadline, "consuming")
                    continue
                channel.basic_ack(method.delivery_tag)
                received += 1
                if received % BATCH == 0:
                    advance(BATCH)
                if received >= config.count:
                    break
            outcome.rate, outcome.cpu_us = clock.throughput(config.count)
            channel.cancel()
        elif scenario == "latency":
            samples: list[float] = []
            messages = channel.consume(queue, auto_ack=True, inactivity_timeout=_POLL)
            for _ in range(config.round_trips):
                sent = time.perf_counter()
                channel.basic_publish("", queue, body)
                method = None
                while method is None:
                    method, _properties, _body = next(messages)
                    if method is None:
                        _check_deadline(deadline, "the round trips")
                samples.append(time.perf_counter() - sent)
                advance(1)
            outcome.p50_us, outcome.p99_us = _latencies(samples)
            channel.cancel()
        else:  # pragma: no cover - the scenario names are checked by the caller
            raise ValueError(f"unknown scenario {scenario!r}")


# ---------------------------------------------------------------- callback adapters


class _CallbackRun:
    """One scenario on a callback adapter's connection, driven by a loop harness.

    :param harness: a :class:`amqp_core.testing.harness.LoopHarness`
    """

    def __init__(
        self, harness: Any, params: Parameters, scenario: str, config: BenchConfig,
        advance: ProgressSink, outcome: Outcome,
    ) -> None:
        self.harness = harness
        self.params = params
        self.scenario = scenario
        self.config = config
        self.advance = advance
        self.outcome = outcome
        self.body = b"x" * config.size
        self.finished = False
        self.closed = False
        self.error: BaseException | None = None
        self.connection: Any = None
        self.channel: Any = None
        self.queue = ""

    def execute(self) -> None:
        """Run the scenario to its end (or its deadline), then close the connection."""
        from ..testing.harness import LoopTimeout

        harness = self.harness
        self.connection = harness.open_connection(
            self.params, on_open=self._guard(self._on_open),
            on_open_error=self._on_open_error, on_close=self._on_close,
        )
        try:
            harness.run_until(lambda: self.finished, self.config.timeout,
                              what=f"the {self.scenario} run")
        except LoopTimeout:
            raise TimeoutError(
                f"the {self.scenario} run did not finish within {self.config.timeout:g} s"
            ) from None
        finally:
            self.finished = True  # callbacks arriving late start nothing new
            self._shut_down()
        if self.error is not None:
            raise self.error

    def _shut_down(self) -> None:
        """Close the connection (once it is open, if it was still opening) and wait for it."""
        from ..testing.harness import LoopTimeout

        connection = self.connection

        def settled() -> bool:
            return bool(self.closed or connection.is_closed or connection.is_open)

        def gone() -> bool:
            return bool(self.closed or connection.is_closed)

        try:
            self.harness.run_until(settled, _CLOSE_TIMEOUT, what="the connection to settle")
            if connection.is_open:
                connection.close()
            self.harness.run_until(gone, _CLOSE_TIMEOUT, what="the connection to close")
        except LoopTimeout:
            pass  # reported by nothing: the run's own outcome is what matters

    # ------------------------------------------------------------ plumbing

    def _guard(self, function: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: Any) -> None:
            try:
                function(*args)
            except Exception as error:  # reported as the run's error
                self._finish(error)

        return guarded

    def _finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.error = error
            self.finished = True
        self.harness.notify()

    def _on_open(self, connection: Any) -> None:
        if self.finished:
            return  # timed out while connecting: _shut_down closes it
        connection.channel(on_open_callback=self._guard(self._on_channel))

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self.closed = True
        self._finish(error)

    def _on_close(self, _connection: Any, reason: BaseException) -> None:
        self.closed = True
        if not self.finished:
            self._finish(reason)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.queue_declare("", exclusive=True, callback=self._guard(self._on_queue))

    def _on_queue(self, reply: Any) -> None:
        if self.finished:
            return
        self.queue = reply.method.queue
        getattr(self, f"_start_{self.scenario}")()

    def _publish_all(self, count: int, done: Callable[[], None]) -> None:
        """Publish ``count`` messages, :data:`BATCH` per loop turn, then call ``done``."""
        publish = self.channel.basic_publish
        queue, body = self.queue, self.body
        remaining = count
        call_soon = self.harness.loop.call_soon

        def burst() -> None:
            nonlocal remaining
            if self.finished:
                return
            size = min(BATCH, remaining)
            for _ in range(size):
                publish("", queue, body)
            remaining -= size
            self.advance(size)
            if remaining:
                call_soon(self._guard(burst))
            else:
                done()

        burst()

    def _wait_for_count(self, count: int, done: Callable[[], None]) -> None:
        """Poll with a passive declare until the queue holds ``count`` messages."""

        def on_declared(reply: Any) -> None:
            if reply.method.message_count >= count:
                done()
            else:
                poll()

        def poll() -> None:
            self.channel.queue_declare(self.queue, passive=True,
                                       callback=self._guard(on_declared))

        poll()

    # ------------------------------------------------------------ scenarios

    def _start_publish(self) -> None:
        clock = _Clock()
        count = self.config.count

        def stored() -> None:
            self.outcome.rate, self.outcome.cpu_us = clock.throughput(count)
            self._finish()

        self._publish_all(count, lambda: self._wait_for_count(count, stored))

    def _start_confirm(self) -> None:
        outstanding: deque[int] = deque()
        count, window = self.config.count, self.config.window
        state = {"published": 0, "confirmed": 0}
        clock: list[_Clock] = []

        def fill() -> None:
            publish = self.channel.basic_publish
            room = min(window - len(outstanding), count - state["published"])
            sequence = state["published"]
            for _ in range(room):
                publish("", self.queue, self.body)
                sequence += 1
                outstanding.append(sequence)
            state["published"] = sequence

        def on_confirm(reply: Any) -> None:
            method = reply.method
            if isinstance(method, spec.Basic.Nack):
                raise RuntimeError(f"the broker nacked message {method.delivery_tag}")
            before = len(outstanding)
            if method.multiple:
                while outstanding and outstanding[0] <= method.delivery_tag:
                    outstanding.popleft()
            elif outstanding and outstanding[0] == method.delivery_tag:
                outstanding.popleft()
            else:
                outstanding.remove(method.delivery_tag)
            done = before - len(outstanding)
            state["confirmed"] += done
            self.advance(done)
            if state["confirmed"] >= count:
                self.outcome.rate, self.outcome.cpu_us = clock[0].throughput(count)
                self._finish()
            else:
                fill()

        def selected(_reply: Any) -> None:
            clock.append(_Clock())
            fill()

        self.channel.confirm_delivery(self._guard(on_confirm), callback=self._guard(selected))

    def _start_consume(self) -> None:
        count, prefetch = self.config.count, self.config.prefetch
        received = 0
        clock: list[_Clock] = []

        def on_message(channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
            nonlocal received
            channel.basic_ack(method.delivery_tag)
            received += 1
            if received % BATCH == 0:
                self.advance(BATCH)
            if received == count:
                self.outcome.rate, self.outcome.cpu_us = clock[0].throughput(count)
                self._finish()

        def consume(_reply: Any = None) -> None:
            clock.append(_Clock())
            self.channel.basic_consume(self.queue, self._guard(on_message))

        def filled() -> None:
            if prefetch:
                self.channel.basic_qos(prefetch_count=prefetch, callback=self._guard(consume))
            else:
                consume()

        self._publish_all(count, lambda: self._wait_for_count(count, filled))

    def _start_latency(self) -> None:
        samples: list[float] = []
        sent = [0.0]
        trips = self.config.round_trips

        def send(_reply: Any = None) -> None:
            sent[0] = time.perf_counter()
            self.channel.basic_publish("", self.queue, self.body)

        def on_message(_channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
            samples.append(time.perf_counter() - sent[0])
            self.advance(1)
            if len(samples) >= trips:
                self.outcome.p50_us, self.outcome.p99_us = _latencies(samples)
                self._finish()
            else:
                send()

        self.channel.basic_consume(self.queue, self._guard(on_message), auto_ack=True,
                                   callback=self._guard(send))


def _run_callback(
    adapter: str, params: Parameters, scenario: str, config: BenchConfig,
    advance: ProgressSink, outcome: Outcome,
) -> None:
    from ..testing.harness import make_harness

    harness = make_harness(adapter)
    try:
        _CallbackRun(harness, params, scenario, config, advance, outcome).execute()
    finally:
        harness.close()


def run_scenario(
    adapter: str, params: Parameters, scenario: str, config: BenchConfig,
    advance: ProgressSink,
) -> Outcome:
    """Run one scenario through one adapter; failures are returned in the outcome.

    :param adapter: the adapter's name (``"blocking"`` or a callback adapter)
    :param params: connection parameters
    :param scenario: ``publish``, ``confirm``, ``consume`` or ``latency``
    :param config: the sizes
    :param advance: called with the number of units done, now and then
    """
    outcome = Outcome(adapter, scenario)
    try:
        if adapter == "blocking":
            _run_blocking(params, scenario, config, advance, outcome)
        else:
            _run_callback(adapter, params, scenario, config, advance, outcome)
    except Exception as error:  # one failed run must not end the others
        outcome.error = error
    return outcome


# ---------------------------------------------------------------- the command


def _adapter_names(requested: list[str] | None) -> list[str]:
    if not requested:
        return [info.name for info in installed_adapters()]
    names: list[str] = []
    for item in requested:
        for name in item.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    if not names:
        raise UsageError("--adapter needs at least one adapter name")
    for name in names:
        get_adapter(name)  # AdapterNotFoundError lists the installed ones
    return names


def _scenario_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise UsageError(
            f"bad --scenarios {text!r}: choose among {', '.join(SCENARIOS)}"
        )
    return [name for name in SCENARIOS if name in names]


def _config(args: Any) -> BenchConfig:
    checks = (
        ("--count", args.count, 1), ("--round-trips", args.round_trips, 1),
        ("--size", args.size, 0), ("--window", args.window, 1),
        ("--prefetch", args.prefetch, 0),
    )
    for option, value, least in checks:
        if value < least:
            raise UsageError(f"bad {option} {value}: must be >= {least}")
    if args.prefetch > 65535:
        raise UsageError(f"bad --prefetch {args.prefetch}: must be <= 65535")
    if args.timeout <= 0:
        raise UsageError(f"bad --timeout {args.timeout}: must be > 0")
    return BenchConfig(count=args.count, round_trips=args.round_trips, size=args.size,
                       window=args.window, prefetch=args.prefetch, timeout=args.timeout)


def _cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    if outcome.error is not None:
        return "failed"
    if outcome.scenario == "latency":
        return f"{outcome.p50_us:,.0f} / {outcome.p99_us:,.0f}"
    return f"{outcome.rate:,.0f} ({outcome.cpu_us:,.1f})"


def _record(outcome: Outcome) -> dict[str, Any]:
    record: dict[str, Any] = {"adapter": outcome.adapter, "scenario": outcome.scenario}
    if outcome.error is not None:
        record["error"] = classify(outcome.error)[1]
    elif outcome.scenario == "latency":
        record.update(p50_us=outcome.p50_us, p99_us=outcome.p99_us)
    else:
        record.update(rate=outcome.rate, cpu_us_per_msg=outcome.cpu_us)
    return record


def bench(ctx: Context) -> int:
    """``bench``: every chosen scenario through every chosen adapter; a table at the end."""
    args = ctx.args
    config = _config(args)
    scenarios = _scenario_names(args.scenarios)
    adapters = _adapter_names(args.adapters)
    params = ctx.parameters()
    with BlockingConnection(params):
        pass  # fail fast (exit code 3) when the broker cannot be reached at all
    mode = args.progress
    if mode == "auto":
        isatty = getattr(ctx.err, "isatty", None)
        mode = "bar" if callable(isatty) and isatty() else "lines"
    progress = Progress(ctx.err, len(adapters) * len(scenarios), mode)
    outcomes: list[Outcome] = []
    try:
        for adapter in adapters:
            for scenario in scenarios:
                progress.start_step(f"{adapter} {scenario}", config.units(scenario))
                outcome = run_scenario(adapter, params, scenario, config, progress.advance)
                outcomes.append(outcome)
                progress.end_step(outcome.summary())
                if outcome.error is not None:
                    _code, text = classify(outcome.error, ctx.target)
                    progress.note(f"amqp-core: error: bench {adapter} {scenario}: {text}")
    finally:
        progress.close()
    failed = any(outcome.error is not None for outcome in outcomes)
    if args.format == "json":
        document = {
            "broker": ctx.target,
            "config": {"count": config.count, "round_trips": config.round_trips,
                       "size": config.size, "window": config.window,
                       "prefetch": config.prefetch},
            "results": [_record(outcome) for outcome in outcomes],
        }
        ctx.out.write(json.dumps(document, indent=2) + "\n")
        return EXIT_FAILURE if failed else EXIT_OK
    titles = {
        "publish": f"publish {config.count} msg/s (CPU us/msg)",
        "confirm": f"confirm {config.count} w{config.window} msg/s (CPU)",
        "consume": f"consume {config.count} msg/s (CPU)",
        "latency": f"latency {config.round_trips}x p50/p99 us",
    }
    found = {(outcome.adapter, outcome.scenario): outcome for outcome in outcomes}
    rows = [[adapter, *(_cell(found.get((adapter, scenario))) for scenario in scenarios)]
            for adapter in adapters]
    ctx.out.write(
        f"bench against {ctx.target}: {config.size} B bodies, prefetch {config.prefetch}\n"
    )
    ctx.out.write(format_table(["adapter", *(titles[name] for name in scenarios)], rows) + "\n")
    ctx.out.flush()
    return EXIT_FAILURE if failed else EXIT_OK
