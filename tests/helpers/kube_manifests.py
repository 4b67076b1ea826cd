"""deploy/kubernetes rendered, and what the tests read from it."""

from collections.abc import Iterator, Mapping

from devmesh import envoy_config, kube_check

SERVICES = ("orders", "inventory", "notifications")
SHOPMESH = (*SERVICES, "envoy")


class Rendered:
    """One rendered variant: its documents by kind and name."""

    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def all(self, kind: str) -> list[dict]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [doc for doc in self.all(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]

    def pod(self, name: str) -> dict:
        return self.get("Deployment", name)["spec"]["template"]["spec"]

    def container(self, name: str) -> dict:
        (container,) = [c for c in self.pod(name)["containers"] if c["name"] == name]
        return container

    def env(self, name: str, container: dict | None = None) -> dict[str, str]:
        """The variables container (default: the Deployment's own) gets: its ConfigMaps'
        then its own; a value from a Secret or a field shows as "<from KIND>"."""
        container = container or self.container(name)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.get("ConfigMap", source["configMapRef"]["name"])["data"])
        for item in container.get("env", []):
            env[item["name"]] = item.get("value", f"<from {next(iter(item.get('valueFrom', {'unset': 0})))}>")
        return env

    def pod_specs(self) -> Iterator[tuple[str, dict]]:
        for kind in ("Deployment", "StatefulSet"):
            for doc in self.all(kind):
                yield f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def variants() -> Mapping[str, Rendered]:
    """Every overlay and every combination of components over the base."""
    return {name: Rendered(kube_check.documents(text)) for name, text in kube_check.variants()}


def port_of(address: str) -> int:
    return envoy_config.split_address(address)[1]


def container_port(container: dict, name_or_number) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name_or_number]
    return port
