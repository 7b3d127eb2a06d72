"""Test support for amqp_core: a private RabbitMQ node (:mod:`amqp_core.testing.broker`)."""
