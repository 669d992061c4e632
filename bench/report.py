"""The printed table and the JSON file of a benchmark run."""

import json
import os
import platform
import subprocess
from pathlib import Path


def machine() -> dict:
    """Describe the machine the figures come from: cores, memory, CPU model and server versions."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "postgresql": _version(["psql", "--version"]),
        "redis": _version(["redis-server", "--version"]),
    }


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "not found"


def _ratio(part, whole) -> str:
    return f"{part / whole:.0%}" if part and whole else "-"


def _number(value, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def _milliseconds(value) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def table_rows(results: dict) -> list[tuple[str, str, str]]:
    """Return (figure, value, comparison) rows for the printed table."""
    baseline = results.get("baseline", {})
    ingest = results.get("ingest", {})
    delivery = results.get("delivery", {})
    e2e = results.get("end_to_end", {})
    memory = results.get("worker_memory", {})
    ledger = results.get("ledger", {})
    insert_rate = baseline.get("insert_app", {}).get("rate_per_second")
    receiver_rate = baseline.get("raw_receiver", {}).get("rate_per_second")

    insert_cpu = baseline.get("insert_app", {}).get("server_cpu_ms_per_request")
    rows = [
        ("baseline insert app", _number(insert_rate, " req/s"), f"server CPU {_milliseconds(insert_cpu)}/request"),
        ("baseline raw receiver", _number(receiver_rate, " req/s"), ""),
    ]
    for name in ("fanout_1", "fanout_10"):
        phase = ingest.get(name, {})
        latency = phase.get("latency_ms", {})
        rows.append((f"ingest {name.replace('_', ' ')}", _number(phase.get("rate_per_second"), " events/s"),
                     f"{_ratio(phase.get('rate_per_second'), insert_rate)} of insert app; "
                     f"p50 {_number(latency.get('p50'), ' ms')}, p99 {_number(latency.get('p99'), ' ms')}; "
                     f"server CPU {_milliseconds(phase.get('server_cpu_ms_per_request'))}/request"))
    rows.append(("drain after ingest", _number(results.get("drain", {}).get("rate_per_second"), " deliveries/s"),
                 "fan-out and delivery of the ingest backlog"))
    rows.append(("delivery", _number(delivery.get("rate_per_second"), " deliveries/s"),
                 f"{_ratio(delivery.get('rate_per_second'), receiver_rate)} of raw receiver; "
                 f"{delivery.get('backlog', 0):,} pre-loaded; "
                 f"worker CPU {_milliseconds(delivery.get('worker_cpu_ms_per_delivery'))}/delivery"))
    latency = e2e.get("latency_ms", {})
    rows.append(("end-to-end latency", f"p50 {_number(latency.get('p50'), ' ms')}",
                 f"p95 {_number(latency.get('p95'), ' ms')}, p99 {_number(latency.get('p99'), ' ms')} "
                 f"at {_number(e2e.get('rate_per_second'), ' events/s')}; CPU/event "
                 f"API {_milliseconds(e2e.get('api_cpu_ms_per_event'))}, "
                 f"worker {_milliseconds(e2e.get('worker_cpu_ms_per_event'))}"))
    start, end = memory.get("start", {}), memory.get("end", {})
    rows.append(("worker peak RSS", f"{start.get('peak_rss_kib', 0) / 1024:,.0f} MiB at start",
                 f"{end.get('peak_rss_kib', 0) / 1024:,.0f} MiB at end ({memory.get('growth', 0):+.1%})"))
    rows.append(("ledger", "BALANCED" if ledger.get("balanced") else "VOID",
                 f"expected {ledger.get('expected', 0):,}, received {ledger.get('received', 0):,}, "
                 f"missing {ledger.get('missing', 0):,}, duplicates {ledger.get('duplicates', 0):,}, "
                 f"unexpected {ledger.get('unexpected', 0):,}"))
    return rows


def print_table(results: dict) -> None:
    rows = table_rows(results)
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for figure, value, comparison in rows:
        print(f"{figure:<{widths[0]}}  {value:>{widths[1]}}  {comparison}")


def write_json(results: dict, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path
