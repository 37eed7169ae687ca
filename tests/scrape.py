"""Reading a ``/metrics`` answer in tests, and checking it with ``promtool check metrics``.

promtool comes from the Debian package ``prometheus`` (``.ci/run`` installs it). Without it the
promtool tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


class Scrape:
    """One exposition in the Prometheus text format, by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Key, float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a labelled series not counted yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes in the samples called ``name``."""
        return {
            value
            for key, labels in self.samples
            if key == name
            for n, value in labels
            if n == label
        }


async def scrape(http: httpx.AsyncClient, url: str = "/metrics") -> Scrape:
    """GET ``url`` and read it; the Prometheus text format (version 0.0.4) is required."""
    response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


def moved(before: Scrape, after: Scrape, wanted: Mapping[Key, float]) -> dict[Key, float]:
    """How far each wanted series moved between two scrapes, to compare with ``wanted``."""
    return {key: after.samples.get(key, 0.0) - before.samples.get(key, 0.0) for key in wanted}


def series(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def promtool_check(text: str) -> None:
    """``promtool check metrics`` finds nothing to say about ``text``: it parses, and the
    names, types, help texts and units follow the Prometheus conventions."""
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool is not installed (Debian package prometheus; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
