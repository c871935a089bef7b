"""Reading `/metrics`: the samples by name and labels, through prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

METRICS_TOKEN = "metrics-token-CANARY-0123456789abcdef0123"
"""At least 32 characters; carries the canary, so a leak of it fails the test."""
PHONE = "8618221733141"
"""A WhatsApp number the tests query: it must appear in no label, span or log line."""


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples."""

    samples: list[Sample]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def label_values(self) -> set[str]:
        return {value for sample in self.samples for value in sample.labels.values()}


def parse(text: str) -> Scrape:
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return Scrape(samples, text)


def scrape(base_url: str, token: str = METRICS_TOKEN) -> Scrape:
    """`GET /metrics` with the token, parsed."""
    answer = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)
