"""The Kubernetes manifests in deploy/, as ``kubectl kustomize`` renders them for production.

Both renders, the service (``deploy/overlays/production``) and its migration Job
(``deploy/overlays/production/migrate``), are validated offline against the Kubernetes
schemas that kubernetes-validate ships, and held to the properties the service relies on:
locked-down pods, probes on /healthz and /readyz, secrets only from Secrets, a drain that fits
the grace period. The ServiceMonitor is the Prometheus Operator's custom resource, which those
schemas do not cover; it is checked against the fields of monitoring.coreos.com/v1 it uses.

``kubectl`` (with kustomize v5 or later) must be installed; .ci/run installs it when it is
missing. Without it the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from starlette.routing import Route

from idp.access_log import FLUSH_TIMEOUT
from idp.app import routes
from idp.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "deploy" / "overlays" / "production"
MIGRATION = SERVICE / "migrate"
# The oldest Kubernetes the manifests are written for, and the newest schemas on hand.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())

# The image's user (Dockerfile); the pods run as it, so runAsNonRoot has a number to check.
IMAGE_USER = int(re.findall(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)[-1])
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
SERVICE_SECRETS = {"IDP_DATABASE_URL", "IDP_REDIS_URL", "IDP_KEY_ENCRYPTION_KEY", "IDP_SMTP_URL"}
MIGRATION_SECRETS = {"IDP_DATABASE_URL", "IDP_KEY_ENCRYPTION_KEY"}
# Variables read by something other than Settings: `idp serve`, prometheus-client, migrations.
OTHER_VARIABLES = {"IDP_WORKERS", "IDP_MIGRATIONS_DIR", "PROMETHEUS_MULTIPROC_DIR"}
PRIVATE_NETWORKS = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}

# The fields of a monitoring.coreos.com/v1 ServiceMonitor that deploy/ uses, typed as the
# Prometheus Operator's CRD types them (durations a little stricter). Any other field is
# refused, as the API server's strict field validation would, so a misspelt one cannot pass.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {"type": "string"},
                        }
                    },
                    "additionalProperties": False,
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"},
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": r"^(\d+(ms|s|m|h))+$",
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it (.ci/run installs kubectl)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        _unavailable("kubectl is not installed")
    version = subprocess.run(
        [path, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    major = re.match(r"v(\d+)\.", kustomize)
    if major is None or int(major[1]) < 5:
        found = kustomize or "too old to report its version"
        _unavailable(f"kubectl's kustomize is {found}; deploy/ needs v5 or later (kubectl 1.27+)")
    return path


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    assert not rendered.stderr, f"kustomize warned: {rendered.stderr}"
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module")
def service(kubectl: str) -> list[dict[str, Any]]:
    return render(kubectl, SERVICE)


@pytest.fixture(scope="module")
def migration(kubectl: str) -> list[dict[str, Any]]:
    return render(kubectl, MIGRATION)


@pytest.fixture(params=["service", "migration"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = request.getfixturevalue(request.param)
    return rendered


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in manifests if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def workload_of(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(doc for doc in manifests if doc["kind"] in ("Deployment", "Job"))


def config(manifests: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap")["data"]
    return data


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def variable(name: str) -> str:
    """The environment variable behind a setting."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"IDP_{name.upper()}"


def secret_variables() -> set[str]:
    """Every setting typed as a secret, by its variable name."""
    return {
        variable(name)
        for name, info in Settings.model_fields.items()
        if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
    }


# Schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(
    manifests: list[dict[str, Any]], version: str
) -> None:
    without_schema = set()
    for doc in manifests:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(doc["kind"])

    # Only the Prometheus Operator's resource is outside Kubernetes' own schemas (checked below).
    assert without_schema <= {"ServiceMonitor"}


def test_the_schemas_refuse_a_misspelt_field(service: list[dict[str, Any]]) -> None:
    deployment = json.loads(json.dumps(one(service, "Deployment")))
    container(deployment)["securityContext"]["readOnlyRootFileSystem"] = True

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_service_monitor_scrapes_the_metrics_port_idp_serves(
    service: list[dict[str, Any]],
) -> None:
    monitor = one(service, "ServiceMonitor")
    target = one(service, "Service")
    deployment = one(service, "Deployment")

    jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(monitor)
    assert matches(monitor["spec"]["selector"]["matchLabels"], target["metadata"]["labels"])
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    port = next(port for port in target["spec"]["ports"] if port["name"] == endpoint["port"])
    served = {port["name"]: port["containerPort"] for port in container(deployment)["ports"]}
    assert served[port["targetPort"]] == int(config(service)["IDP_METRICS_PORT"])


def test_the_service_monitor_check_refuses_an_unknown_field(
    service: list[dict[str, Any]],
) -> None:
    monitor = json.loads(json.dumps(one(service, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(monitor)


# One release: the Job and the service run the same image with the same settings


def test_the_job_and_the_service_run_one_image_with_one_config(
    service: list[dict[str, Any]], migration: list[dict[str, Any]]
) -> None:
    image = container(one(service, "Deployment"))["image"]

    assert one(service, "ConfigMap") == one(migration, "ConfigMap")
    assert container(one(migration, "Job"))["image"] == image
    tag = re.fullmatch(r"[^@]+:(?P<tag>[\w][\w.-]*)(@sha256:[0-9a-f]{64})?", image)
    assert tag and tag["tag"] != "latest", f"{image} names no release"


def test_the_service_runs_idp_serve_and_the_job_runs_idp_migrate(
    service: list[dict[str, Any]], migration: list[dict[str, Any]]
) -> None:
    server, migrate = container(one(service, "Deployment")), container(one(migration, "Job"))

    # The image's ENTRYPOINT is idp and its CMD `serve --host 0.0.0.0 --port 8000`.
    assert "command" not in server and "args" not in server
    assert {port["name"]: port["containerPort"] for port in server["ports"]}["http"] == 8000
    assert "command" not in migrate and migrate["args"] == ["migrate"]
    assert pod_spec(one(migration, "Job"))["restartPolicy"] == "Never"


def test_the_namespace_enforces_the_restricted_pod_security_standard(
    manifests: list[dict[str, Any]],
) -> None:
    namespace = one(manifests, "Namespace")

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {doc["metadata"].get("namespace") for doc in manifests if doc is not namespace} == {
        namespace["metadata"]["name"]
    }


# Replicas, probes, drain


def test_at_least_two_replicas_run_and_drains_take_one_at_a_time(
    service: list[dict[str, Any]],
) -> None:
    deployment = one(service, "Deployment")
    autoscaler = one(service, "HorizontalPodAutoscaler")
    budget = one(service, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    # The autoscaler owns the count; a replicas field would be reset by every apply.
    assert deployment["spec"].get("replicas", autoscaler["spec"]["minReplicas"]) >= 2
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
    assert matches(budget["spec"]["selector"]["matchLabels"], labels)
    assert budget["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_liveness_asks_healthz_and_readiness_asks_readyz(service: list[dict[str, Any]]) -> None:
    server = container(one(service, "Deployment"))

    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_the_probed_paths_are_served_at_the_root_under_any_issuer(
    service: list[dict[str, Any]],
) -> None:
    server = container(one(service, "Deployment"))
    probed = {server[probe]["httpGet"]["path"] for probe in PROBES}
    settings = load_settings(env="test", issuer="https://idp.example.com/tenant")

    served = {route.path for route in routes(settings) if isinstance(route, Route)}

    assert probed <= served


def test_readiness_fails_first_and_the_grace_period_outlasts_the_drain(
    service: list[dict[str, Any]],
) -> None:
    deployment = one(service, "Deployment")
    server, settings = container(deployment), config(service)
    delay, timeout = float(settings["IDP_SHUTDOWN_DELAY"]), int(settings["IDP_SHUTDOWN_TIMEOUT"])
    probe = server["readinessProbe"]

    # Even a balancer that only follows the probe sees it fail before the socket closes.
    assert delay >= probe["periodSeconds"] * probe["failureThreshold"]
    # No preStop hook: SIGTERM arrives at once and idp itself drains.
    assert "lifecycle" not in server
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace > delay + timeout + FLUSH_TIMEOUT


# Locked-down pods


def test_pods_run_as_the_image_user_without_privileges(manifests: list[dict[str, Any]]) -> None:
    workload = workload_of(manifests)
    pod, main = pod_spec(workload), container(workload)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert "hostNetwork" not in pod and "hostPID" not in pod
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert main["securityContext"].get("privileged", False) is False


def test_every_writable_path_is_an_empty_dir(manifests: list[dict[str, Any]]) -> None:
    workload = workload_of(manifests)
    volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
    mounts = container(workload)["volumeMounts"]
    writable = {mount["mountPath"] for mount in mounts if not mount.get("readOnly")}
    env = {item["name"]: item.get("value") for item in container(workload).get("env", [])}

    assert "/tmp" in writable  # noqa: S108 - the pod's mount point, not a file made here
    for mount in mounts:
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]], mount
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        assert env["PROMETHEUS_MULTIPROC_DIR"] in writable


def test_every_container_has_cpu_and_memory_requests_and_limits(
    manifests: list[dict[str, Any]],
) -> None:
    resources = container(workload_of(manifests))["resources"]

    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


# Configuration and secrets


def test_secrets_come_only_from_secrets(manifests: list[dict[str, Any]]) -> None:
    workload = workload_of(manifests)
    main = container(workload)
    needed = SERVICE_SECRETS if workload["kind"] == "Deployment" else MIGRATION_SECRETS
    from_secrets = {
        item["name"]
        for item in main["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
        and item["valueFrom"]["secretKeyRef"].get("optional") is not True
    }

    assert needed <= from_secrets
    assert not any(doc["kind"] == "Secret" for doc in manifests), "secrets are made apart"
    for item in main["env"]:
        if item["name"] in secret_variables():
            assert "value" not in item, f"{item['name']} is written into the manifest"


def read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def test_the_secret_examples_name_what_the_pods_read_and_hold_only_placeholders(
    service: list[dict[str, Any]],
) -> None:
    required = read_env_file(ROOT / "deploy" / "secrets.example.env")
    connectors = read_env_file(ROOT / "deploy" / "connector-secrets.example.env")
    server = container(one(service, "Deployment"))
    references = [
        item["valueFrom"]["secretKeyRef"] for item in server["env"] if "valueFrom" in item
    ]
    optional = [source["secretRef"] for source in server["envFrom"] if "secretRef" in source]

    assert {ref["key"] for ref in references if ref["name"] == "idp-secrets"} == set(required)
    assert [(ref["name"], ref.get("optional")) for ref in optional] == [
        ("idp-connector-secrets", True)
    ]
    assert set(connectors) <= secret_variables()
    for value in [*required.values(), *connectors.values()]:
        assert "CHANGE-ME" in value


def test_the_config_map_holds_known_settings_and_no_secret(
    manifests: list[dict[str, Any]],
) -> None:
    data = config(manifests)
    known = {variable(name) for name in Settings.model_fields} | OTHER_VARIABLES

    assert set(data) <= known, f"unknown variables: {set(data) - known}"
    assert not set(data) & secret_variables()


def test_the_production_config_starts_the_service(
    service: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("IDP_") or any(name == variable(f) for f in Settings.model_fields):
            monkeypatch.delenv(name)
    for name, value in config(service).items():
        monkeypatch.setenv(name, value)
    placeholders = {
        "IDP_DATABASE_URL": "postgresql://idp:placeholder@postgres:5432/idp",
        "IDP_REDIS_URL": "redis://redis:6379/0",
        "IDP_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(bytes(32)).decode(),
        "IDP_SMTP_URL": "smtp://idp:placeholder@smtp:587",
    }
    for name, value in placeholders.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.env == "prod"
    assert settings.proxy_networks, "X-Forwarded-For must be believed from the ingress"
    assert not settings.serves_metrics_on_main_port, "the Ingress must not reach /metrics"
    assert settings.shutdown_delay > 0, "readiness must fail before the socket closes"
    ingress = one(service, "Ingress")
    host = urlsplit(settings.issuer).hostname
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]


# Network


def test_only_the_ingress_controller_and_prometheus_may_connect(
    service: list[dict[str, Any]],
) -> None:
    policy = one(service, "NetworkPolicy")
    labels = one(service, "Deployment")["spec"]["template"]["metadata"]["labels"]
    allowed = {
        rule["ports"][0]["port"]: rule["from"][0]["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
    }

    assert matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert allowed == {
        "http": {"app.kubernetes.io/name": "ingress-nginx"},
        "metrics": {"app.kubernetes.io/name": "prometheus"},
    }
    assert all(len(rule["ports"]) == 1 for rule in policy["spec"]["ingress"])


def egress_ports(policy: dict[str, Any]) -> set[tuple[int, str]]:
    rules = policy["spec"]["egress"]
    assert all(rule.get("ports") for rule in rules), "an egress rule without ports opens all"
    return {(port["port"], port["protocol"]) for rule in rules for port in rule["ports"]}


def test_the_service_reaches_dns_its_stores_smtp_and_public_https_only(
    service: list[dict[str, Any]],
) -> None:
    policy = one(service, "NetworkPolicy")
    https = next(
        rule
        for rule in policy["spec"]["egress"]
        if rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    )
    ipv4 = next(peer["ipBlock"] for peer in https["to"] if peer["ipBlock"]["cidr"] == "0.0.0.0/0")

    assert egress_ports(policy) == {
        (53, "UDP"),
        (53, "TCP"),
        (5432, "TCP"),
        (6379, "TCP"),
        (587, "TCP"),
        (465, "TCP"),
        (443, "TCP"),
    }
    assert PRIVATE_NETWORKS <= set(ipv4["except"])


def test_the_migration_reaches_dns_and_postgresql_and_nothing_reaches_it(
    migration: list[dict[str, Any]],
) -> None:
    policy = one(migration, "NetworkPolicy")
    labels = one(migration, "Job")["spec"]["template"]["metadata"]["labels"]

    assert matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert not policy["spec"].get("ingress")
    assert egress_ports(policy) == {(53, "UDP"), (53, "TCP"), (5432, "TCP")}


def test_the_ingress_routes_to_the_http_port_and_never_to_metrics(
    service: list[dict[str, Any]],
) -> None:
    ingress = one(service, "Ingress")
    target = one(service, "Service")
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]

    assert backends == [{"name": target["metadata"]["name"], "port": {"name": "http"}}]
    assert matches(
        target["spec"]["selector"],
        one(service, "Deployment")["spec"]["template"]["metadata"]["labels"],
    )
