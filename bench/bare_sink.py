"""A bare aiosmtpd server that accepts every message and keeps nothing.

It is the baseline for bench/smtp_ingest.py: whatever Mailtrap costs on top of aiosmtpd's own
SMTP parsing shows up as the difference between the two.

Usage: python bench/bare_sink.py [--host 127.0.0.1] [--port 0]
Prints "SMTP listening on HOST:PORT" once bound, then runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session

# Large enough for the benchmark's 25 MB message once base64 has inflated it.
DATA_SIZE_LIMIT = 64 * 1024 * 1024


class AcceptAllHandler:
    """Answers every DATA with 250 and drops the content."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


def make_smtp_protocol() -> SMTP:
    # A fixed hostname: the default calls socket.getfqdn(), a DNS lookup per connection.
    return SMTP(AcceptAllHandler(), data_size_limit=DATA_SIZE_LIMIT, hostname="bare-sink")


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    # aiosmtpd's threaded Controller cannot bind port 0, so the loop owns the listener.
    server = await loop.create_server(make_smtp_protocol, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    print(f"SMTP listening on {bound_host}:{bound_port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
