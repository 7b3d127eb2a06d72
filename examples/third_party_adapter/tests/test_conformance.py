"""The whole conformance kit: loop contract, streams, scripted-peer protocol scenarios and
(given ``--amqp-url``) live scenarios, each parametrized over the selected adapters."""

from amqp_core.testing.contract_tests import *  # noqa: F403


def test_the_adapter_is_found_by_name() -> None:
    from amqp_adapter_asyncfd import AsyncfdConnection

    from amqp_core.plugins import get_adapter, get_connection_class

    assert get_connection_class("asyncfd") is AsyncfdConnection
    assert get_adapter("asyncfd").distribution == "amqp-adapter-asyncfd"
