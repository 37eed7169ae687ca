"""Where ``/metrics`` is served, how ``idp serve`` prepares several workers to share their
numbers, the closed label sets, and how HTTP requests are counted."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from idp import metrics
from idp.config import ConfigError, Settings, load_settings
from idp.metrics import HttpMetrics, scrapes

KEK = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
PROD = {"env": "prod", "issuer": "https://id.example.com", "key_encryption_key": KEK}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``IDP_*`` variable and no metrics directory; whatever a test sets is undone."""
    for name in [*os.environ, metrics.MULTIPROC_ENV, "IDP_METRICS_HOST"]:
        if name.upper().startswith("IDP_") or name == metrics.MULTIPROC_ENV:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("values", "served"),
    [
        pytest.param({}, True, id="dev"),
        pytest.param({"env": "test"}, True, id="test"),
        pytest.param(PROD, False, id="prod"),
        pytest.param({**PROD, "metrics_on_main_port": True}, True, id="prod-asked-for"),
        pytest.param({"metrics_on_main_port": False}, False, id="dev-turned-off"),
        pytest.param({"metrics_port": 9464}, False, id="own-port"),
    ],
)
def test_metrics_are_on_the_service_port_unless_prod_or_given_a_port(
    values: dict[str, Any], served: bool
) -> None:
    assert load_settings(**values).serves_metrics_on_main_port is served


def test_asking_for_metrics_on_both_ports_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^IDP_METRICS_ON_MAIN_PORT: "):
        load_settings(metrics_port=9464, metrics_on_main_port=True)


def test_serve_refuses_a_metrics_port_equal_to_its_own() -> None:
    with pytest.raises(ConfigError, match=r"^IDP_METRICS_PORT: "):
        metrics.prepare_workers(load_settings(metrics_port=8000), workers=1, host="::", port=8000)


def test_one_worker_keeps_its_values_in_memory_and_metrics_listen_where_it_does() -> None:
    metrics.prepare_workers(Settings(), workers=1, host="0.0.0.0", port=8000)

    assert metrics.MULTIPROC_ENV not in os.environ
    assert os.environ["IDP_METRICS_HOST"] == "0.0.0.0"


def test_a_chosen_metrics_host_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_METRICS_HOST", "10.0.0.5")
    metrics.prepare_workers(Settings(), workers=2, host="0.0.0.0", port=8000)
    assert os.environ["IDP_METRICS_HOST"] == "10.0.0.5"


def test_several_workers_share_a_new_directory_removed_at_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at_exit: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    monkeypatch.setattr(scrapes.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(scrapes.atexit, "register", lambda f, *a, **k: at_exit.append((f, a)))

    metrics.prepare_workers(Settings(), workers=2, host="127.0.0.1", port=8000)

    directory = Path(os.environ[metrics.MULTIPROC_ENV])
    assert directory.parent == tmp_path and directory.is_dir()
    [(remove, args)] = at_exit
    remove(*args)
    assert not directory.exists()


def test_an_operators_directory_is_emptied_of_other_processes_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = ["counter_1.db", f"counter_{os.getpid()}.db", "gauge_livesum_7.db", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))

    metrics.prepare_workers(Settings(), workers=4, host="127.0.0.1", port=8000)

    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"counter_{os.getpid()}.db",
        "notes.txt",
    ]
    assert os.environ[metrics.MULTIPROC_ENV] == str(tmp_path)


def test_the_live_gauges_of_an_exited_worker_are_dropped_and_its_counters_kept(
    tmp_path: Path,
) -> None:
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = int(exited.stdout)
    names = [f"gauge_livesum_{dead}.db", f"counter_{dead}.db", f"gauge_livesum_{os.getpid()}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")

    metrics.forget_dead_workers(str(tmp_path))

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names[1:])


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("github", "github"),
        ("apple", "apple"),
        ("sso", "sso"),
        ("sso:conn_4f2a9c", "sso"),
        ("someone-else", "other"),
        ("ssomething", "other"),
        ("", "other"),
    ],
)
def test_connectors_are_labelled_by_kind_never_by_connection(key: str, label: str) -> None:
    assert metrics.connector_label(key) == label


def test_past_its_cap_a_label_takes_the_value_other() -> None:
    capped = metrics.CappedLabel(2)

    assert [capped(value) for value in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        "other",
        "a",
        "other",
        "b",
    ]


# HTTP requests: counted and timed by RequestLog's reports


def http_samples(route: str) -> dict[tuple[str, str], float]:
    """This process's HTTP request samples for ``GET route`` answered 200, by name and bucket."""
    wanted = {"route": route, "method": "GET", "status": "200"}
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in REGISTRY.collect()
        if family.name in ("idp_http_requests", "idp_http_request_duration_seconds")
        for sample in family.samples
        if {key: sample.labels.get(key) for key in wanted} == wanted
    }


def test_each_request_is_counted_and_timed_in_its_bucket() -> None:
    http_metrics = HttpMetrics()
    for seconds in (0.0004, 0.003, 0.02, 0.02, 0.7, 11.0):
        http_metrics.started()
        http_metrics.finished("/test/counted", "GET", 200, seconds)

    samples = http_samples("/test/counted")
    assert samples[("idp_http_requests_total", "")] == 6
    assert samples[("idp_http_request_duration_seconds_bucket", "0.025")] == 4
    assert samples[("idp_http_request_duration_seconds_sum", "")] == pytest.approx(11.7434)


def test_requests_in_flight_go_up_and_back_down() -> None:
    http_metrics = HttpMetrics()
    before = REGISTRY.get_sample_value("idp_http_requests_in_flight")
    assert before is not None

    http_metrics.started()
    http_metrics.started()
    serving = REGISTRY.get_sample_value("idp_http_requests_in_flight")
    for _ in range(2):
        http_metrics.finished("/test/in-flight", "GET", 200, 0.001)

    assert serving == before + 2
    assert REGISTRY.get_sample_value("idp_http_requests_in_flight") == before
