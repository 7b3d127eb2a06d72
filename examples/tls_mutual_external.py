"""Mutual TLS with SASL EXTERNAL: the client logs in with its certificate, not a password.

The client trusts the broker's CA (``--ca-file``) and presents its own certificate and key
(``--cert-file``, ``--key-file``, loaded with ``SSLContext.load_cert_chain``).  With
``ExternalCredentials()`` the client asks for the EXTERNAL mechanism: the broker takes the
user name from the certificate (RabbitMQ's ``rabbitmq_auth_mechanism_ssl`` plugin, common
name by default), and no password is sent.  Any user and password in the URL are ignored.

Usage: python examples/tls_mutual_external.py amqps://HOST:5671/%2F --ca-file ca.pem
       --cert-file client.pem --key-file client.key [--port PORT] [--server-hostname NAME]
"""

import argparse
import os
import ssl

import amqp_core as pika


def main(url: str, ca_file: str, cert_file: str, key_file: str, port: int | None = None,
         server_hostname: str | None = None) -> None:
    context = ssl.create_default_context(cafile=ca_file)  # authenticate the broker
    context.load_cert_chain(cert_file, key_file)  # and let it authenticate us
    params = pika.URLParameters(url)
    params.ssl_options = pika.SSLOptions(context, server_hostname)
    params.credentials = pika.ExternalCredentials()
    if port is not None:
        params.port = port
    with pika.BlockingConnection(params) as connection:
        info = connection.tls_info
        assert info is not None
        print(f"logged in with EXTERNAL over {info['version']}")
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"hello, certificate holder")
        _method, _properties, body = channel.basic_get(queue, auto_ack=True)
        print("round trip:", body.decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("AMQP_URL"),
                        help="the broker's amqps:// (or amqp://) URL (default: $AMQP_URL)")
    parser.add_argument("--ca-file", required=True, help="PEM file of the CA to trust")
    parser.add_argument("--cert-file", required=True, help="the client's PEM certificate")
    parser.add_argument("--key-file", required=True, help="the client's PEM private key")
    parser.add_argument("--port", type=int, help="the broker's TLS port (default: the URL's)")
    parser.add_argument("--server-hostname", help="name to check in the broker's certificate "
                        "and send for SNI (default: the URL's host)")
    args = parser.parse_args()
    if not args.url:
        parser.error("give the broker URL or set AMQP_URL")
    main(args.url, args.ca_file, args.cert_file, args.key_file, args.port,
         args.server_hostname)
