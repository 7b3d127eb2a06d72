"""The whole conformance kit, for every installed adapter (see ``conftest.py``)."""

from amqp_core.testing.contract_tests import *  # noqa: F403
