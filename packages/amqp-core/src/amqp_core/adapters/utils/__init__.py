"""Helpers shared by adapters (pika\x27s ``adapters.utils``)."""
