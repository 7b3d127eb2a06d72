"""TLS with server authentication: the client checks the broker's certificate.

The ``ssl.SSLContext`` trusts the CA that signed the broker's certificate (``--ca-file``) and
checks the name in it: ``SSLOptions(context, server_hostname)`` sends ``server_hostname`` for
SNI and matches the certificate against it (default: the host of the URL).  The client logs
in with the URL's user and password (PLAIN) inside the encrypted stream.

Usage: python examples/tls_server_auth.py amqps://guest:guest@HOST:5671/%2F --ca-file ca.pem
       [--port PORT] [--server-hostname NAME]
"""

import argparse
import os
import ssl
import sys

import amqp_core as pika
from amqp_core.exceptions import AMQPConnectionError


def tls_parameters(url: str, context: ssl.SSLContext, port: int | None,
                   server_hostname: str | None) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.ssl_options = pika.SSLOptions(context, server_hostname)
    if port is not None:
        params.port = port
    return params


def main(url: str, ca_file: str, port: int | None = None,
         server_hostname: str | None = None) -> int:
    # verify the broker: its certificate must chain to ca_file and carry the expected name
    context = ssl.create_default_context(cafile=ca_file)
    params = tls_parameters(url, context, port, server_hostname)
    with pika.BlockingConnection(params) as connection:
        info = connection.tls_info  # not in pika: version, cipher, the verified certificate
        assert info is not None
        subject = dict(item for rdn in info["peer_certificate"]["subject"] for item in rdn)
        print(f"connected with {info['version']}, broker certificate CN={subject['commonName']}")
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()  # the publish returns once the message is queued
        channel.basic_publish("", queue, b"hello over TLS")
        _method, _properties, body = channel.basic_get(queue, auto_ack=True)
        print("round trip:", body.decode())

    # The same broker with a context that trusts no CA at all: the handshake fails.
    untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    params = tls_parameters(url, untrusted, port, server_hostname)
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except AMQPConnectionError as error:
        print("a context without the CA is refused:", type(error).__name__,
              "(certificate verify failed)" if "CERTIFICATE_VERIFY_FAILED" in repr(error) else "")
        return 0
    print("unexpected: the broker's certificate was accepted without its CA")
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL"),
                        help="the broker's amqps:// (or amqp://) URL (default: $AMQP_URL)")
    parser.add_argument("--ca-file", required=True, help="PEM file of the CA to trust")
    parser.add_argument("--port", type=int, help="the broker's TLS port (default: the URL's)")
    parser.add_argument("--server-hostname", help="name to check in the broker's certificate "
                        "and send for SNI (default: the URL's host)")
    args = parser.parse_args()
    if not args.url:
        parser.error("give the broker URL or set AMQP_URL")
    sys.exit(main(args.url, args.ca_file, args.port, args.server_hostname))
