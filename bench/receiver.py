"""A fast webhook receiver for the benchmark: returns 200 to every POST and records its webhook-id.

Run as `python bench/receiver.py --port N`. The benchmark reads the records over two routes that
no endpoint uses: GET /_bench/count returns how many POSTs arrived, and GET /_bench/dump returns
every record as JSON lines `[webhook_id, path, arrival_unix_seconds]`.
"""

import argparse
import json
import time

from aiohttp import web

RECORDS_KEY = web.AppKey("records", list)


async def receive(request: web.Request) -> web.Response:
    await request.read()
    webhook_id = request.headers.get("webhook-id", "")
    request.app[RECORDS_KEY].append((webhook_id, request.path, time.time()))
    return web.Response(text="ok")


async def count(request: web.Request) -> web.Response:
    return web.json_response({"count": len(request.app[RECORDS_KEY])})


async def dump(request: web.Request) -> web.Response:
    lines = "\n".join(json.dumps(record) for record in request.app[RECORDS_KEY])
    return web.Response(text=lines, content_type="application/x-ndjson")


def build_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[RECORDS_KEY] = []
    app.router.add_get("/_bench/count", count)
    app.router.add_get("/_bench/dump", dump)
    app.router.add_post("/{path:.*}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmark's webhook receiver on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    args = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
