"""The baseline for ingest: a minimal WSGI app that stores one row per POST in PostgreSQL.

It does what any service that accepts an event must do at least (read the body, one INSERT, one
commit, a JSON response) and nothing else, so the API's rate is compared with the floor cost of
the database and of gunicorn on the same machine. Each gunicorn worker process keeps one
connection open, as the API does with CONN_MAX_AGE. BENCH_BASELINE_DSN names the database.
"""

import json
import os
import uuid

import psycopg

TABLE_SQL = "CREATE TABLE IF NOT EXISTS bench_baseline (id uuid PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
INSERT_SQL = "INSERT INTO bench_baseline (id, body) VALUES (%s, %s)"

_connection: psycopg.Connection | None = None


def _connect() -> psycopg.Connection:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["BENCH_BASELINE_DSN"])
    return _connection


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
        return [b"POST only\n"]

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    row_id = uuid.uuid4()
    connection = _connect()
    with connection.transaction():
        connection.execute(INSERT_SQL, (row_id, body.decode("utf-8")))

    content = json.dumps({"id": str(row_id), "status": "accepted"}).encode()
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(content)))])
    return [content]
