"""pika's ``connection`` module: parameters, credentials and the asynchronous ``Connection``."""

from ._connection_api import Connection
from ._core_factory import PRODUCT
from .credentials import ExternalCredentials, PlainCredentials
from .parameters import ConnectionParameters, Parameters, SSLOptions, URLParameters

__all__ = [
    "PRODUCT",
    "Connection",
    "ConnectionParameters",
    "ExternalCredentials",
    "Parameters",
    "PlainCredentials",
    "SSLOptions",
    "URLParameters",
]
