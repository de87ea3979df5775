#!/usr/bin/env python3
"""A real SMTP server on loopback for the integration tests (aiosmtpd).

Stores every message it accepts in DIR as NNNN.eml, with NNNN.json beside it
(envelope sender and recipients, whether the session used TLS, who
authenticated). Prints "PORT <n>" once it listens, and runs until its
standard input closes, so it dies with the test that started it.

  smtp_sink.py DIR [--tls-cert C --tls-key K] [--auth USER:PASSWORD]
"""
import argparse
import itertools
import logging
import json
import os
import socket
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, folder):
        self.folder = folder
        self.numbers = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.folder, "%04d" % next(self.numbers))
        with open(path + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth": session.auth_data if session.authenticated else None,
        }
        with open(path + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(path + ".json.tmp", path + ".json")
        return "250 2.0.0 stored as " + os.path.basename(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    # The tests read what was stored; aiosmtpd's own chatter (a client that
    # gives up on an untrusted certificate, its deprecation notices) is noise.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth")
    args = parser.parse_args()

    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, auth_data=user if ok else None)

        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(args.tls_cert))

    port = free_port()
    controller = Controller(Store(args.folder), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("PORT", port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
