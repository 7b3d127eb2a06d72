"""Fixtures shared by every test: the RabbitMQ broker the integration tests talk to.

Theory of operation: one broker per test session, started on first use.  When ``AMQP_URL`` is
set, the tests use that broker as it is (``broker`` is an :class:`ExternalBroker`: only ``url``,
``host`` and ``port``); tests that need TLS material or ``rabbitmqctl`` take ``private_broker``,
which skips them in that case only.  Otherwise RabbitMQ is installed if missing and a private
node (its own name, ports and directory; 127.0.0.1 only) is started, then stopped when the session
ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from amqp_core.testing.broker import ExternalBroker, PrivateBroker, ensure_installed

Broker = PrivateBroker | ExternalBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """The session's broker: the one at ``AMQP_URL`` if set, else a private node started here.

    Both kinds have ``url``, ``host``, ``port`` and ``is_private``.
    """
    url = os.environ.get("AMQP_URL")
    if url:
        yield ExternalBroker.from_url(url)
        return
    ensure_installed()
    with PrivateBroker() as node:
        yield node


@pytest.fixture
def private_broker(broker: Broker) -> PrivateBroker:
    """The session's private node (TLS files, ``ctl`` ...); skips the test under ``AMQP_URL``."""
    if not isinstance(broker, PrivateBroker):
        pytest.skip(
            "needs the private test broker (TLS certificates, rabbitmqctl); "
            "AMQP_URL points the tests at an external broker"
        )
    return broker


@pytest.fixture(scope="session")
def broker_url(broker: Broker) -> str:
    """The session broker's ``amqp://`` URL."""
    return broker.url
