"""The benchmark's load generator: one asyncio process, many concurrent HTTP/1.1 connections.

Two modes, both bounded in time and in request count:

- closed: `--concurrency` connections each send the next request as soon as the last response
  arrives, for `--warmup` + `--duration` seconds; the rate counts only responses inside the
  measured window.
- open: requests start at `--rate` per second on a fixed schedule whatever the answers, so a
  slow server adds queueing delay to the latency instead of slowing the load down.

Bodies: `event` posts an event to the API with a Bearer key, `signed` posts a webhook envelope
signed like a delivery (HMAC-SHA256, Standard Webhooks headers). The summary goes to `--out` as
JSON, with the id and scheduled send time of every accepted event.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import aiohttp

NOTE = "x" * 120  # pads each payload to about the size of a small real webhook


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class RequestFactory:
    """Build the body and headers of request number n for one body kind."""

    def __init__(self, kind: str, event_type: str, api_key: str):
        self.kind = kind
        self.event_type = event_type
        self.api_key = api_key
        self.signing_key = os.urandom(32)

    def build(self, number: int) -> tuple[bytes, dict[str, str], str | None]:
        payload = {"order_id": number, "amount_cents": 1999, "note": NOTE}
        if self.kind == "event":
            body = json.dumps({"type": self.event_type, "payload": payload}).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
            return body, headers, None
        return self._signed(payload)

    def _signed(self, payload: dict) -> tuple[bytes, dict[str, str], str]:
        message_id = str(uuid.uuid4())
        timestamp = str(int(time.time()))
        envelope = {"id": message_id, "type": self.event_type, "timestamp": "2026-01-01T00:00:00Z", "data": payload}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self.signing_key, signed, hashlib.sha256).digest()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
        return body, headers, message_id


class Recorder:
    """Responses, latencies and accepted ids of one run."""

    def __init__(self, window_start: float, window_end: float):
        self.window_start = window_start
        self.window_end = window_end
        self.in_window = 0
        self.latencies_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.accepted: list[tuple[str, float]] = []
        self.sent = 0
        self.last_finished = window_start

    def record(self, scheduled: float, finished: float, status: int | None, accepted_id: str | None,
               error: str | None) -> None:
        if error is not None:
            self.errors[error] = self.errors.get(error, 0) + 1
            return
        if accepted_id is not None:
            self.accepted.append((accepted_id, scheduled))
        if self.window_start <= finished <= self.window_end:
            self.in_window += 1
            self.last_finished = max(self.last_finished, finished)
            self.latencies_ms.append((finished - scheduled) * 1000)

    def summary(self, measured_seconds: float) -> dict:
        return {
            "sent": self.sent,
            "ok_in_window": self.in_window,
            "rate_per_second": self.in_window / measured_seconds if measured_seconds > 0 else 0.0,
            "latency_ms": {name: percentile(self.latencies_ms, fraction)
                           for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))},
            "errors": self.errors,
            "accepted": self.accepted,
        }


async def send_one(session: aiohttp.ClientSession, url: str, factory: RequestFactory, number: int,
                   scheduled: float, recorder: Recorder) -> None:
    body, headers, signed_id = factory.build(number)
    recorder.sent += 1
    try:
        async with session.post(url, data=body, headers=headers) as response:
            content = await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        recorder.record(scheduled, time.time(), None, None, type(error).__name__)
        return

    finished = time.time()
    if status not in (200, 202):
        recorder.record(scheduled, finished, status, None, f"http {status}")
        return
    accepted_id = signed_id if signed_id is not None else json.loads(content)["id"]
    recorder.record(scheduled, finished, status, accepted_id, None)


async def run_closed(args, factory: RequestFactory) -> dict:
    start = time.time()
    recorder = Recorder(start + args.warmup, start + args.warmup + args.duration)
    counter = iter(range(args.max_requests))

    async def connection_loop(session: aiohttp.ClientSession) -> None:
        for number in counter:
            if time.time() >= recorder.window_end:
                return
            await send_one(session, args.url, factory, number, time.time(), recorder)

    async with new_session(args.concurrency) as session:
        await asyncio.gather(*(connection_loop(session) for _ in range(args.concurrency)))
    # A run that hits --max-requests early is measured up to its last response.
    measured = min(recorder.window_end, recorder.last_finished) - recorder.window_start
    return recorder.summary(measured)


async def run_open(args, factory: RequestFactory) -> dict:
    start = time.time() + 0.2
    total = min(args.max_requests, int(args.rate * args.duration))
    recorder = Recorder(start, float("inf"))
    tasks = []
    async with new_session(args.concurrency) as session:
        for number in range(total):
            scheduled = start + number / args.rate
            delay = scheduled - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send_one(session, args.url, factory, number, scheduled, recorder)))
        await asyncio.gather(*tasks)
    return recorder.summary(args.duration)


def new_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Send bounded HTTP load to one URL on loopback.")
    parser.add_argument("--url", required=True, help="URL to POST to (127.0.0.1 or [::1] only)")
    parser.add_argument("--mode", choices=("closed", "open"), required=True, help="closed loop or fixed rate")
    parser.add_argument("--kind", choices=("event", "signed"), required=True, help="body and headers to send")
    parser.add_argument("--api-key", default="", help="tenant API key for --kind event")
    parser.add_argument("--event-type", default="bench.order", help="event type sent")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent connections at most")
    parser.add_argument("--duration", type=float, required=True, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds before the measured window (closed)")
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second (open)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="requests sent at most")
    parser.add_argument("--out", required=True, help="file to write the JSON summary to")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not args.url.startswith(("http://127.0.0.1:", "http://[::1]:")):
        raise SystemExit(f"--url {args.url} is not on loopback; the benchmark sends only to 127.0.0.1 or ::1")
    factory = RequestFactory(args.kind, args.event_type, args.api_key)
    runner = run_closed if args.mode == "closed" else run_open
    summary = asyncio.run(runner(args, factory))
    with open(args.out, "w") as handle:
        json.dump(summary, handle)


if __name__ == "__main__":
    main()
