"""The kit itself, tested with pytest's ``pytester``: its plugin, its selection, and that it
catches broken adapters.

Theory of operation: each test writes a small test project into pytester's directory (a
conftest defining an adapter or a harness, and a test module importing kit tests) and runs
pytest on it in a subprocess (``runpytest_subprocess``: the plugin, the adapters and the loops
start afresh, and nothing leaks into this process).  The deliberately broken adapters wrap the
select loop: one whose ``call_soon_threadsafe`` runs the callback at once on the calling
thread, one whose streams never report the end of the stream; each must fail exactly the kit
tests that check what it breaks, and pass the others.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from amqp_core.plugins import installed_adapters
from amqp_core.testing import loop_tests, stream_tests

pytest_plugins = ["pytester"]

#: Bound on each child run, in seconds.
TIMEOUT = 120

LOOP_TESTS = [name for name in loop_tests.__all__ if name.startswith("test_")]
STREAM_TESTS = [name for name in stream_tests.__all__ if name.startswith("test_")]

BROKEN_ADAPTERS = textwrap.dedent(
    '''
    """Deliberately broken adapters, built on the select loop."""

    from amqp_core.adapters._select_ioloop import IOLoop, SelectEventLoop
    from amqp_core.adapters.base_connection import BaseConnection
    from amqp_core.testing.harness import RunnableLoopHarness


    class NotThreadSafeLoop(SelectEventLoop):
        """Runs 'thread-safe' callbacks at once, on whatever thread asked."""

        def call_soon_threadsafe(self, callback):
            callback()


    class Forwarder:
        """A stream protocol that drops eof_received."""

        def __init__(self, protocol):
            self._protocol = protocol

        def __getattr__(self, name):
            return getattr(self._protocol, name)

        def eof_received(self):
            return None  # the end of the stream is lost


    class LosesEndOfStreamLoop(SelectEventLoop):
        def connect_stream(self, sockaddr, family, protocol, ssl_context, server_hostname,
                           on_done):
            return super().connect_stream(sockaddr, family, Forwarder(protocol), ssl_context,
                                          server_hostname, on_done)


    def connection_class(loop_class):
        class Connection(BaseConnection):
            @classmethod
            def _create_event_loop(cls, custom_ioloop):
                ioloop = custom_ioloop if custom_ioloop is not None else IOLoop()
                return ioloop, loop_class(ioloop)

        return Connection


    def pytest_amqp_core_harnesses(config):
        return {
            "not-threadsafe": lambda name: RunnableLoopHarness(
                name, connection_class(NotThreadSafeLoop)),
            "loses-eof": lambda name: RunnableLoopHarness(
                name, connection_class(LosesEndOfStreamLoop)),
        }
    '''
)


def run_kit(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "amqp_core.testing", "-p", "no:cacheprovider",
                                         *args, timeout=TIMEOUT)


def failed_tests(result: pytest.RunResult) -> set[tuple[str, str]]:
    """``(test function, adapter)`` of every test reported FAILED."""
    failed = set()
    for line in result.outlines:
        match = re.match(r"FAILED \S+::(test_\w+)\[([\w-]+)\]", line)
        if match:
            failed.add((match.group(1), match.group(2)))
    return failed


def test_the_kit_runs_for_a_named_adapter_without_a_broker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_loop="from amqp_core.testing.loop_tests import *\n",
        test_peer="from amqp_core.testing.protocol_tests import "
                  "test_peer_consume_delivers_in_order_and_acks_reach_the_peer, "
                  "test_peer_malformed_frame_is_a_remote_protocol_error\n",
    )
    result = run_kit(pytester, "--amqp-adapter=select", "-v")
    result.assert_outcomes(passed=len(LOOP_TESTS) + 5)
    result.stdout.fnmatch_lines_random([
        "amqp_core kit adapters: select (amqp-core *)",
        "*test_call_soon_is_fifo_and_never_synchronous?select? PASSED*",
        "*test_peer_malformed_frame_is_a_remote_protocol_error?select-bad-frame-end? PASSED*",
    ])


def test_default_selection_is_every_installed_loop_adapter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_loop="from amqp_core.testing.loop_tests import "
                                  "test_call_soon_is_fifo_and_never_synchronous\n")
    result = run_kit(pytester, "--collect-only", "-q")
    expected = sorted(info.name for info in installed_adapters() if info.name != "blocking")
    collected = sorted(re.findall(r"\[(\w+)\]", result.stdout.str()))
    assert collected == expected, result.stdout.str()


def test_an_unknown_adapter_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_loop="from amqp_core.testing.loop_tests import *\n")
    result = run_kit(pytester, "--amqp-adapter=select,no-such-adapter")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'no-such-adapter'*not installed*installed: *select*"])


def test_broken_adapters_fail_exactly_the_tests_of_what_they_break(
    pytester: pytest.Pytester,
) -> None:
    # in a subdirectory: its conftest (and hook) is loaded only during collection, after the
    # adapter names were given
    sub = pytester.mkpydir("broken")
    (sub / "conftest.py").write_text(BROKEN_ADAPTERS)
    (sub / "test_loop.py").write_text("from amqp_core.testing.loop_tests import *\n")
    (sub / "test_streams.py").write_text("from amqp_core.testing.stream_tests import *\n")
    result = run_kit(pytester, "--amqp-adapter=not-threadsafe,loses-eof")
    failed = failed_tests(result)
    expected = {
        "not-threadsafe": {
            "test_threadsafe_callback_from_50_threads_runs_each_once_on_the_loop_thread",
            "test_threadsafe_callback_wakes_an_idle_loop",
        },
        "loses-eof": {
            "test_stream_connect_receive_end_lost_exactly_once_in_order",
            "test_stream_receives_16_mib_intact",
        },
    }
    assert failed == {(name, adapter) for adapter, names in expected.items() for name in names}, (
        result.stdout.str())
    total = 2 * (len(LOOP_TESTS) + len(STREAM_TESTS))
    result.assert_outcomes(passed=total - 4, failed=4)
    result.stdout.fnmatch_lines_random([
        "*thread-safe callbacks ran outside the loop's thread*",
        "*At index 2 diff: 'lost' != 'eof'*",
    ])


def test_an_in_process_adapter_with_a_runnable_loop_needs_no_harness(
    pytester: pytest.Pytester,
) -> None:
    # registered with amqp_core's own plugin API (not an entry point, not the pytest hook):
    # the kit finds it by name and drives it with the generic RunnableLoop harness
    pytester.makeconftest(textwrap.dedent(
        '''
        from amqp_core import hookimpl
        from amqp_core.hookspecs import AdapterDescription
        from amqp_core.plugins import register_plugin


        class Plugin:
            @hookimpl
            def amqp_core_adapters(self):
                return [AdapterDescription(
                    name="inprocess", native_loop="select IOLoop", install_hint="-",
                    connection_class="amqp_core.adapters.select_connection:SelectConnection")]


        register_plugin(Plugin(), "inprocess-plugin")
        '''
    ))
    pytester.makepyfile(test_loop=textwrap.dedent(
        '''
        from amqp_core.testing.harness import RunnableLoopHarness
        from amqp_core.testing.loop_tests import *


        def test_the_generic_harness_was_chosen(amqp_harness):
            assert type(amqp_harness) is RunnableLoopHarness
            assert amqp_harness.adapter == "inprocess"
        '''
    ))
    result = run_kit(pytester, "--amqp-adapter=inprocess")
    result.assert_outcomes(passed=len(LOOP_TESTS) + 1)


def test_a_conftest_fixture_overrides_the_harness(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the adapters are named by the environment this time
    pytester.makeconftest(textwrap.dedent(
        '''
        import pytest
        from amqp_core.testing.harness import SelectHarness


        class MyHarness(SelectHarness):
            pass


        @pytest.fixture
        def amqp_harness(amqp_adapter):
            harness = MyHarness(amqp_adapter)
            yield harness
            harness.close()
        '''
    ))
    pytester.makepyfile(test_loop=textwrap.dedent(
        '''
        from amqp_core.testing.loop_tests import test_timers_fire_in_deadline_order


        def test_mine(amqp_harness):
            assert type(amqp_harness).__name__ == "MyHarness"
        '''
    ))
    monkeypatch.setenv("AMQP_KIT_ADAPTERS", "select")
    result = run_kit(pytester, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(["*test_timers_fire_in_deadline_order?select? PASSED*",
                                        "*test_mine?select? PASSED*"])


def test_live_scenarios_are_skipped_without_a_broker(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    pytester.makepyfile(test_live="from amqp_core.testing.scenarios import *\n"
                                  "from amqp_core.testing.blocking_scenarios import *\n")
    result = run_kit(pytester, "--amqp-adapter=select,blocking", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) > 10 and "passed" not in outcomes, outcomes
    result.stdout.fnmatch_lines(["*no broker for the live scenarios*--amqp-url*"])
