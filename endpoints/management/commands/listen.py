import hmac
import http.server
import json
import time

from django.core.management.base import BaseCommand, CommandError

from endpoints.secrets import InvalidSecret, decode_secret, sign

# Deliveries older or newer than this many seconds are rejected, as Standard Webhooks receivers do.
TIMESTAMP_TOLERANCE_SECONDS = 300


class Command(BaseCommand):
    help = "Run a local webhook receiver that verifies each delivery's signature and prints it."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=9000, help="TCP port to listen on (default 9000)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--secret", required=True, help="the endpoint's signing secret, whsec_…")

    def handle(self, *args, port: int, host: str, secret: str, **options):
        try:
            key = decode_secret(secret)
        except InvalidSecret as error:
            raise CommandError(str(error)) from None
        server = http.server.ThreadingHTTPServer((host, port), self._handler(key))
        self.stdout.write(f"Listening on http://{host}:{port}/ ; press Ctrl-C to stop.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    def _handler(self, key: bytes):
        command = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                problem = verification_problem(key, self.headers, body)
                self.send_response(400 if problem else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                command.report(self.headers.get("webhook-id"), body, problem)

            def log_message(self, *args):
                pass

        return Handler

    def report(self, message_id: str | None, body: bytes, problem: str | None) -> None:
        if problem:
            self.stderr.write(f"REJECTED {message_id}: {problem}")
            return
        try:
            event_type = json.loads(body).get("type")
        except (ValueError, AttributeError):
            event_type = "?"
        self.stdout.write(f"VERIFIED {message_id} type={event_type} bytes={len(body)}")
        self.stdout.write(body.decode("utf-8", errors="replace"))


def verification_problem(key: bytes, headers, body: bytes) -> str | None:
    """Return why a delivery fails verification, or None when one of its signatures matches."""
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "").split()
    if not message_id or not timestamp.isdigit() or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature header"
    if abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
        return f"timestamp {timestamp} is more than {TIMESTAMP_TOLERANCE_SECONDS} s from now"
    expected = sign(key, message_id, int(timestamp), body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        return "no signature matches the secret"
    return None
