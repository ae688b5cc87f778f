"""deploy/: the Kubernetes manifests against the Kubernetes JSON schemas that
kubernetes-validate ships (offline, strict: unknown fields are errors), and checked for
what the schemas cannot see (selectors that match, the names that refer to each other,
one beat). No JSON schema for compose files ships in any installed package, so
docker-compose.yml is parsed and its structure checked here instead."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"
K8S_VERSION = "1.33.0"


def documents() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_its_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_set_is_complete():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents()}
    assert {("Deployment", "akarouter-web"), ("Deployment", "akarouter-worker"), ("Deployment", "akarouter-beat"),
            ("Service", "akarouter-web"), ("HorizontalPodAutoscaler", "akarouter-web"), ("Ingress", "akarouter"),
            ("ConfigMap", "akarouter"), ("Secret", "akarouter"), ("Job", "akarouter-migrate")} <= kinds


def test_selectors_match_their_pods_and_names_resolve():
    deployments, services = by_kind("Deployment"), by_kind("Service")
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    web_labels = deployments["akarouter-web"]["spec"]["template"]["metadata"]["labels"]
    assert services["akarouter-web"]["spec"]["selector"].items() <= web_labels.items()
    hpa = by_kind("HorizontalPodAutoscaler")["akarouter-web"]["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", "akarouter-web")
    for rule in by_kind("Ingress")["akarouter"]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] in services
    pods = [d["spec"]["template"]["spec"] for d in [*deployments.values(), *by_kind("Job").values()]]
    for pod in pods:
        for container in pod["containers"]:
            refs = {k: v["name"] for ref in container.get("envFrom", []) for k, v in ref.items()}
            assert refs == {"configMapRef": "akarouter", "secretRef": "akarouter"}


def test_web_probes_shutdown_and_streaming():
    web = by_kind("Deployment")["akarouter-web"]["spec"]["template"]["spec"]
    [container] = web["containers"]
    assert container["command"] == ["python", "-m", "akaplatform.server"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" in container
    shutdown = int(by_kind("ConfigMap")["akarouter"]["data"]["AKA_SHUTDOWN_SECONDS"])
    assert web["terminationGracePeriodSeconds"] > shutdown
    annotations = by_kind("Ingress")["akarouter"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300


def test_exactly_one_beat():
    beat = by_kind("Deployment")["akarouter-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_compose_runs_every_role_on_postgres_with_pgvector():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat"} <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["web"]["command"] == ["python", "-m", "akaplatform.server"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for role in ("migrate", "worker", "beat"):
        assert services[role]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name


def test_the_image_is_multi_stage_and_exports_the_embedder_at_build():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert "manage.py export_embedder" in dockerfile
    assert 'CMD ["python", "-m", "akaplatform.server"]' in dockerfile
