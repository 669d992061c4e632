"""Start, freeze, measure and stop the benchmark's child processes.

Every service runs in its own session (process group), so stopping it reaches the gunicorn or
Celery children too, and nothing outlives the benchmark.
"""

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

logger = logging.getLogger("bench")

STOP_GRACE_SECONDS = 20  # seconds a service may take to exit after SIGTERM before SIGKILL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """One child process group with its log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.frozen = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def freeze(self) -> None:
        """Pause every process of the group (SIGSTOP); the work waits in the broker and the database."""
        os.killpg(self.pid, signal.SIGSTOP)
        self.frozen = True

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if not self.running():
            self.log.close()
            return
        if self.frozen:
            self.resume()
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %d s; killing it", self.name, STOP_GRACE_SECONDS)
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            self._check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log {text!r} within {timeout:g} s; see {self.log_path}")

    def wait_for_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP response means the server is up
            except OSError:
                self._check_alive()
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not respond at {url} within {timeout:g} s; see {self.log_path}")

    def _check_alive(self) -> None:
        if not self.running():
            raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; see {self.log_path}")


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                pids.append(int(entry.name))
        except ProcessLookupError:
            continue
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """Sum the user and system CPU time used so far by every live process in a group, in seconds."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, see proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def group_memory_kib(pgid: int) -> dict[str, int]:
    """Sum the current (VmRSS) and peak (VmHWM) resident memory of every process in a group, in KiB."""
    totals = {"rss_kib": 0, "peak_rss_kib": 0, "processes": 0}
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        totals["rss_kib"] += int(fields.get("VmRSS", "0 kB").split()[0])
        totals["peak_rss_kib"] += int(fields.get("VmHWM", "0 kB").split()[0])
        totals["processes"] += 1
    return totals
