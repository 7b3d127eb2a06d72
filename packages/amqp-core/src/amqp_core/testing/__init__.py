"""Test support for amqp_core and its adapters: the adapter conformance kit.

* :mod:`amqp_core.testing.broker` -- a private, throwaway RabbitMQ node.
* The conformance kit, an opt-in pytest plugin: enable it with
  ``-p amqp_core.testing`` or ``pytest_plugins = ["amqp_core.testing"]`` (the
  plugin itself is :mod:`amqp_core.testing.plugin`), then import the tests::

      from amqp_core.testing.contract_tests import *  # the whole kit

  or a part of them: :mod:`~amqp_core.testing.loop_tests`,
  :mod:`~amqp_core.testing.stream_tests` (the loop contract),
  :mod:`~amqp_core.testing.protocol_tests` (a scripted peer, no broker),
  :mod:`~amqp_core.testing.scenarios` and
  :mod:`~amqp_core.testing.blocking_scenarios` (a live broker).
  See ``docs/writing-an-adapter.md``.

Importing this package imports neither pytest nor any event-loop framework:
the plugin is only loaded by pytest, through ``pytest_plugins`` below.  A
conftest may import from it before enabling the plugin: this module has no
assertions to rewrite (PYTEST_DONT_REWRITE), so pytest does not warn.
"""

#: Loaded by pytest when this package is enabled as a plugin.
pytest_plugins = ["amqp_core.testing.plugin"]
