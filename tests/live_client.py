"""HTTP from many threads against the live test server, for races that need separate connections."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests

# Threads sending at once; each request thread of the server holds one database connection,
# and the PostgreSQL server is shared, so this stays well under its connection limit.
SENDER_THREADS = 24


def send_concurrently(count: int, send: Callable[[requests.Session], requests.Response],
                      threads: int = SENDER_THREADS) -> list[requests.Response]:
    """Call `send` `count` times from `threads` threads that start together; return the responses."""
    threads = min(threads, count)
    barrier = Barrier(threads)

    def worker(batch: int) -> list[requests.Response]:
        with requests.Session() as session:
            barrier.wait(timeout=30)
            return [send(session) for _ in range(batch)]

    batches = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(worker, batches))
    return [response for batch in results for response in batch]


def post_event(base_url: str, key: str, body: bytes, **headers: str) -> Callable[[requests.Session], requests.Response]:
    """Return a sender that posts `body` to /v1/events with the tenant key `key`."""
    all_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers}

    def send(session: requests.Session) -> requests.Response:
        return session.post(f"{base_url}/v1/events", data=body, headers=all_headers, timeout=60)

    return send
