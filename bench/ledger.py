"""Match every accepted event's deliveries with what the receiver recorded.

The expected set is built from what the API accepted (and what the benchmark pre-loaded), not
from the service's database, so a delivery the service forgot to create counts as missing.
"""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Ledger:
    expected: set[tuple[str, str]] = field(default_factory=set)  # (webhook-id, receiver path)

    def expect(self, event_ids, paths: list[str]) -> None:
        for event_id in event_ids:
            for path in paths:
                self.expected.add((event_id, path))

    def balance(self, records: list[tuple[str, str, float]]) -> dict:
        """Return missing, duplicate and unexpected counts of `records` against the expected set."""
        seen = Counter((webhook_id, path) for webhook_id, path, _ in records)
        missing = sum(1 for pair in self.expected if pair not in seen)
        duplicates = sum(times - 1 for times in seen.values() if times > 1)
        unexpected = sum(1 for pair in seen if pair not in self.expected)
        return {
            "expected": len(self.expected),
            "received": sum(seen.values()),
            "missing": missing,
            "duplicates": duplicates,
            "unexpected": unexpected,
            "balanced": missing == 0 and duplicates == 0 and unexpected == 0,
        }


def first_arrivals(records: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    arrivals: dict[tuple[str, str], float] = {}
    for webhook_id, path, arrived_at in records:
        key = (webhook_id, path)
        if key not in arrivals or arrived_at < arrivals[key]:
            arrivals[key] = arrived_at
    return arrivals
