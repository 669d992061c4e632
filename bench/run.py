"""Benchmark Praeto Dispatcher on loopback: ingest, delivery, end-to-end latency and a ledger.

    .venv/bin/python bench/run.py                            # full run, about 5 minutes on 2 cores
    .venv/bin/python bench/run.py --smoke                    # about 40 s; exits 1 when the ledger is VOID
    .venv/bin/python bench/run.py --soak 600 --e2e-rate 60   # 10 minutes end to end, for memory growth

One run recreates its own PostgreSQL database and empties its own Redis database, starts the
receiver, the baseline insert app, the API under gunicorn, Celery beat and a worker, measures
each phase, stops everything it started and writes bench/results/<timestamp>.json.
docs/benchmarks.md describes each figure and what bounds it.
"""

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report, stack  # noqa: E402
from bench.ledger import Ledger, first_arrivals  # noqa: E402
from bench.loadgen import percentile  # noqa: E402
from bench.processes import group_cpu_seconds, group_memory_kib  # noqa: E402

logger = logging.getLogger("bench")

RESULTS_DIR = ROOT / "bench" / "results"
POLL_SECONDS = 0.1  # interval of the completion checks while a phase drains
SOAK_SAMPLE_SECONDS = 30  # interval of worker memory samples during the end-to-end phase


@dataclass
class Plan:
    """Sizes of one run; `--smoke` shrinks every one of them."""

    duration: float  # measured seconds of each saturation phase
    warmup: float  # seconds before each measured window
    max_requests: int  # requests one load phase sends at most
    concurrency: int  # connections of the closed-loop load generator
    backlog: int  # deliveries pre-loaded for the delivery phase
    e2e_seconds: float  # length of the open-loop end-to-end phase
    e2e_max_rate: float  # events per second the end-to-end phase sends at most
    drain_timeout: float  # seconds a phase may take to drain before the run gives up on it


def make_plan(args) -> Plan:
    if args.smoke:
        return Plan(duration=2, warmup=0.5, max_requests=5000, concurrency=16, backlog=300, e2e_seconds=3,
                    e2e_max_rate=40, drain_timeout=45)
    e2e_seconds = args.soak or args.duration * 2
    return Plan(duration=args.duration, warmup=2, max_requests=args.max_requests, concurrency=args.concurrency,
                backlog=args.backlog, e2e_seconds=e2e_seconds, e2e_max_rate=1e9, drain_timeout=600)


class Run:
    """One benchmark run: its services, plan, ledger and results."""

    def __init__(self, args, plan: Plan, stamp: str):
        self.args = args
        self.plan = plan
        self.log_dir = RESULTS_DIR / f"{stamp}-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = stack.service_env(args.database_url, args.broker_url)
        self.env["DELIVERY_BATCH_SIZE"] = str(args.batch_size)
        self.stack = stack.Stack(self.env, self.log_dir, args.web_workers, args.worker_concurrency)
        self.ledger = Ledger()
        mode = "full"
        if args.smoke:
            mode = "smoke"
        elif args.soak:
            mode = "soak"
        self.results: dict = {"mode": mode, "started_at": stamp, "machine": report.machine(), "plan": plan.__dict__,
                              "settings": {"web_workers": args.web_workers,
                                           "worker_concurrency": args.worker_concurrency,
                                           "delivery_batch_size": args.batch_size}}

    # --- setup ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        logger.info("recreating database %s and emptying %s", self.args.database_url, self.args.broker_url)
        stack.recreate_database(self.args.database_url)
        stack.flush_broker(self.args.broker_url)
        stack.migrate(self.env, self.log_dir / "migrate.log")
        self._setup_django()
        self.receiver_port = self.stack.start_receiver()

        from bench import fixtures
        self.fixtures = fixtures
        self.fanout_1 = fixtures.create_bench_tenant("fo1", 1, self.receiver_port)
        self.fanout_10 = fixtures.create_bench_tenant("fo10", 10, self.receiver_port)

    def _setup_django(self) -> None:
        import os

        import django

        os.environ.update(self.env)
        django.setup()

    # --- phases --------------------------------------------------------------------------------

    def run_baselines(self) -> None:
        logger.info("baseline: insert app and raw receiver")
        self._create_baseline_table()
        port = self.stack.start_web("baseline", "bench.baseline_app:application",
                                    {"BENCH_BASELINE_DSN": self.args.database_url})
        cpu_before = self.cpu_seconds("baseline")
        insert_app = self.load_closed(f"http://127.0.0.1:{port}/events", "event", "")
        insert_app["server_cpu_ms_per_request"] = self.cpu_ms_per_item("baseline", cpu_before, insert_app["sent"])
        self.stack.stop("baseline")
        raw = self.load_closed(f"http://127.0.0.1:{self.receiver_port}/raw/0", "signed", "")
        self.results["baseline"] = {"insert_app": _without_ids(insert_app), "raw_receiver": _without_ids(raw)}

    def _create_baseline_table(self) -> None:
        from django.db import connection

        from bench.baseline_app import TABLE_SQL
        with connection.cursor() as cursor:
            cursor.execute(TABLE_SQL)

    def run_ingest(self) -> None:
        """Saturate the API with workers not yet started, so it has the machine to itself as the baseline had."""
        self.api_port = self.stack.start_web("api", "dispatcher.wsgi")
        ingest = {}
        for name, tenant in (("fanout_1", self.fanout_1), ("fanout_10", self.fanout_10)):
            logger.info("ingest: %s", name)
            cpu_before = self.cpu_seconds("api")
            summary = self.load_closed(self.api_url, "event", tenant.api_key)
            summary["server_cpu_ms_per_request"] = self.cpu_ms_per_item("api", cpu_before, summary["sent"])
            self.ledger.expect([event_id for event_id, _ in summary["accepted"]], tenant.paths)
            ingest[name] = _without_ids(summary)
        self.results["ingest"] = ingest

    def run_drain(self) -> None:
        """Start the workers on the ingest backlog and time until it is delivered."""
        logger.info("drain: starting workers on %d expected deliveries", len(self.ledger.expected))
        self.worker = self.stack.start_workers()
        self.results["worker_memory"] = {"ready": self.worker_memory()}
        seconds = self.wait_drained()
        self.results["drain"] = _rate_entry(len(self.ledger.expected), seconds)
        self.results["worker_memory"]["start"] = self.worker_memory()

    def run_delivery(self) -> None:
        """Freeze the workers, pre-load a backlog, then resume them and time until it is delivered."""
        logger.info("delivery: pre-loading %d deliveries", self.plan.backlog)
        self.freeze_workers()
        event_ids = self.fixtures.preload_backlog(self.fanout_1, self.plan.backlog)
        self.ledger.expect(event_ids, self.fanout_1.paths[:1])
        cpu_before = self.cpu_seconds("worker")
        self.resume_workers()
        seconds = self.wait_drained()
        worker_cpu = self.cpu_ms_per_item("worker", cpu_before, self.plan.backlog)
        self.results["delivery"] = dict(_rate_entry(self.plan.backlog, seconds), backlog=self.plan.backlog,
                                        worker_cpu_ms_per_delivery=worker_cpu)

    def run_end_to_end(self) -> None:
        """Send events at half the measured capacity on a fixed schedule and time each arrival."""
        rate = self.half_capacity()
        logger.info("end to end: %.0f events/s for %.0f s", rate, self.plan.e2e_seconds)
        cpu_before = {name: self.cpu_seconds(name) for name in ("api", "worker")}
        summary = self.load_open(rate)
        self.ledger.expect([event_id for event_id, _ in summary["accepted"]], self.fanout_1.paths)
        self.wait_drained()
        accepted = len(summary["accepted"])
        cpu = {f"{name}_cpu_ms_per_event": self.cpu_ms_per_item(name, before, accepted)
               for name, before in cpu_before.items()}
        arrivals = first_arrivals(self.receiver_records())
        path = self.fanout_1.paths[0]
        latencies = [(arrivals[(event_id, path)] - scheduled) * 1000
                     for event_id, scheduled in summary["accepted"] if (event_id, path) in arrivals]
        self.results["end_to_end"] = {
            "rate_per_second": rate, "seconds": self.plan.e2e_seconds, "accepted": accepted, **cpu,
            "errors": summary["errors"], "api_latency_ms": summary["latency_ms"],
            "latency_ms": {name: percentile(latencies, fraction)
                           for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))},
        }

    def half_capacity(self) -> float:
        if self.args.e2e_rate:
            return self.args.e2e_rate
        delivery = self.results["delivery"]["rate_per_second"]
        ingest = self.results["ingest"]["fanout_1"]["rate_per_second"]
        return min(self.plan.e2e_max_rate, delivery / 2, ingest / 2)

    def close_ledger(self) -> None:
        records = [record for record in self.receiver_records() if not record[1].startswith("/raw/")]
        balance = self.ledger.balance(records)
        statuses = self.fixtures.count_deliveries_by_status()
        balance["deliveries_by_status"] = statuses
        balance["attempts_recorded"] = self.fixtures.count_attempts()
        # Every delivery succeeded on its first attempt, so one attempt row per received POST.
        attempts_match = balance["attempts_recorded"] == balance["received"]
        succeeded_match = statuses.get("succeeded", 0) == balance["expected"]
        balance["balanced"] = balance["balanced"] and attempts_match and succeeded_match
        self.results["ledger"] = balance

    # --- load and waiting ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/v1/events"

    def load_closed(self, url: str, kind: str, api_key: str) -> dict:
        return self._loadgen(["--url", url, "--mode", "closed", "--kind", kind, "--api-key", api_key,
                              "--duration", str(self.plan.duration), "--warmup", str(self.plan.warmup),
                              "--concurrency", str(self.plan.concurrency),
                              "--max-requests", str(self.plan.max_requests)],
                             self.plan.duration + self.plan.warmup)

    def load_open(self, rate: float) -> dict:
        sampler = MemorySampler(self) if self.args.soak else None
        arguments = ["--url", self.api_url, "--mode", "open", "--kind", "event", "--api-key", self.fanout_1.api_key,
                     "--rate", str(rate), "--duration", str(self.plan.e2e_seconds), "--concurrency", "512",
                     "--max-requests", str(int(rate * self.plan.e2e_seconds) + 1)]
        summary = self._loadgen(arguments, self.plan.e2e_seconds, sampler)
        if sampler is not None:
            self.results["worker_memory"]["samples"] = sampler.samples
        return summary

    def _loadgen(self, arguments: list[str], seconds: float, sampler=None) -> dict:
        out = self.log_dir / f"loadgen-{time.monotonic_ns()}.json"
        command = [stack.PYTHON, "bench/loadgen.py", *arguments, "--out", str(out)]
        process = stack.subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + seconds + 120
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"load generator did not finish within {seconds + 120:.0f} s")
            if sampler is not None:
                sampler.maybe_sample()
            time.sleep(0.2)
        if process.returncode != 0:
            raise RuntimeError(f"load generator failed with exit code {process.returncode}")
        return json.loads(out.read_text())

    def wait_drained(self) -> float | None:
        """Wait until no event waits for fan-out, no delivery is open and the queue is empty; return seconds."""
        started = time.monotonic()
        deadline = started + self.plan.drain_timeout
        while time.monotonic() < deadline:
            if self._drained():
                return time.monotonic() - started
            time.sleep(POLL_SECONDS)
        logger.error("work did not drain within %.0f s; the ledger will show what is missing",
                     self.plan.drain_timeout)
        return None

    def _drained(self) -> bool:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM events WHERE fanned_out_at IS NULL) OR EXISTS "
                           "(SELECT 1 FROM deliveries WHERE status IN ('pending', 'in_flight', 'retrying'))")
            busy = cursor.fetchone()[0]
        return not busy and stack.broker_queue_length(self.args.broker_url) == 0

    def receiver_records(self) -> list[tuple[str, str, float]]:
        url = f"http://127.0.0.1:{self.receiver_port}/_bench/dump"
        with urllib.request.urlopen(url, timeout=60) as response:
            lines = response.read().decode().splitlines()
        return [tuple(json.loads(line)) for line in lines if line]

    # --- workers and CPU time ------------------------------------------------------------------

    def cpu_seconds(self, name: str) -> float:
        return group_cpu_seconds(self.stack.services[name].pid)

    def cpu_ms_per_item(self, name: str, before: float, items: int) -> float | None:
        """Return the CPU milliseconds a service used per item since `before` (its CPU seconds then)."""
        if not items:
            return None
        return (self.cpu_seconds(name) - before) * 1000 / items

    def worker_memory(self) -> dict:
        return group_memory_kib(self.worker.pid)

    def freeze_workers(self) -> None:
        self.stack.services["beat"].freeze()
        self.stack.services["worker"].freeze()

    def resume_workers(self) -> None:
        """Resume the workers and send a sweep at once, as beat would on its next tick."""
        from dispatcher.celery import app

        self.stack.services["worker"].resume()
        self.stack.services["beat"].resume()
        app.send_task("deliveries.sweep")


class MemorySampler:
    """Worker memory samples taken every SOAK_SAMPLE_SECONDS while a long phase runs."""

    def __init__(self, run: Run):
        self.run = run
        self.started = time.monotonic()
        self.next_at = self.started
        self.samples: list[dict] = []

    def maybe_sample(self) -> None:
        if time.monotonic() >= self.next_at:
            sample = self.run.worker_memory()
            sample["seconds"] = round(time.monotonic() - self.started)
            self.samples.append(sample)
            self.next_at += SOAK_SAMPLE_SECONDS


def _rate_entry(count: int, seconds: float | None) -> dict:
    rate = count / seconds if seconds else None
    return {"count": count, "seconds": seconds, "rate_per_second": rate}


def _without_ids(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "accepted"}


def finish_memory(run: Run) -> None:
    memory = run.results.get("worker_memory", {})
    if "start" not in memory or not run.stack.services.get("worker"):
        return
    memory["end"] = run.worker_memory()
    start, end = memory["start"]["peak_rss_kib"], memory["end"]["peak_rss_kib"]
    memory["growth"] = (end - start) / start if start else None


def execute(run: Run) -> None:
    run.prepare()
    run.run_baselines()
    run.run_ingest()
    run.run_drain()
    run.run_delivery()
    run.run_end_to_end()
    finish_memory(run)
    run.close_ledger()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Praeto Dispatcher on loopback.")
    parser.add_argument("--smoke", action="store_true", help="a run of tens of seconds that checks the ledger")
    parser.add_argument("--soak", type=float, default=0, help="seconds of the end-to-end phase (memory growth)")
    parser.add_argument("--duration", type=float, default=15, help="measured seconds of each saturation phase")
    parser.add_argument("--backlog", type=int, default=20000, help="deliveries pre-loaded for the delivery phase")
    parser.add_argument("--max-requests", type=int, default=30000, help="requests one saturation phase sends at most")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the saturating load generator")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn worker processes of the API and baseline")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker pool processes")
    parser.add_argument("--batch-size", type=int, default=200,
                        help="DELIVERY_BATCH_SIZE of the run: deliveries one worker task claims and sends")
    parser.add_argument("--e2e-rate", type=float, default=0,
                        help="events per second of the end-to-end phase instead of half the measured capacity")
    parser.add_argument("--database-url", default="postgres://root@127.0.0.1:5432/bench",
                        help="PostgreSQL database the run drops and recreates (its name must contain 'bench')")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/9",
                        help="Redis database the run empties and uses as the broker")
    return parser.parse_args()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # django.setup() later applies the service's LOGGING, whose root level is LOG_LEVEL=WARNING.
    logger.setLevel(logging.INFO)
    args = parse_args()
    stack.database_name(args.database_url)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = Run(args, make_plan(args), stamp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        execute(run)
    finally:
        run.stack.stop_all()
        stack.flush_broker(args.broker_url)
        path = report.write_json(run.results, RESULTS_DIR, stamp)

    report.print_table(run.results)
    print(f"results: {path}")
    return 0 if run.results["ledger"]["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
