"""devmesh.kube_secrets: what a trial cluster needs, from this machine's credentials."""

import base64
import stat

import yaml

from devmesh import kube_secrets


def secrets_of(text: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(text)}


def test_the_database_password_is_made_once_and_every_url_uses_it(tmp_path):
    env = {"SHOPMESH_DATA_DIR": str(tmp_path)}
    first, again = secrets_of(kube_secrets.render(env)), secrets_of(kube_secrets.render(env))
    password = base64.b64decode(first["postgres"]["data"]["password"]).decode()
    assert len(password) >= 24 and again["postgres"] == first["postgres"]
    urls = {k: base64.b64decode(v).decode() for k, v in first["shopmesh-databases"]["data"].items()}
    assert urls == {
        s: f"postgresql+psycopg://shopmesh:{password}@postgres:5432/{s}"
        for s in ("orders", "inventory", "notifications")
    }
    stored = tmp_path / "credentials" / "kube" / "postgres-password"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_each_process_gets_its_own_identity_and_nothing_names_the_database_when_told(tmp_path):
    made = secrets_of(kube_secrets.render({"SHOPMESH_DATA_DIR": str(tmp_path)}, "shop", databases=False))
    assert set(made) == {
        "shopmesh-mesh-envoy",
        "shopmesh-mesh-orders",
        "shopmesh-mesh-inventory",
        "shopmesh-mesh-notifications",
        "shopmesh-edge-tls",
        "shopmesh-jwks",
    }
    assert {doc["metadata"]["namespace"] for doc in made.values()} == {"shop"}
    keys = {base64.b64decode(made[f"shopmesh-mesh-{n}"]["data"]["tls.key"]) for n in kube_secrets.PROCESSES}
    assert len(keys) == len(kube_secrets.PROCESSES)
    assert '"d"' not in made["shopmesh-jwks"]["data"]["jwks.json"]  # public keys only


def test_the_file_it_writes_only_its_owner_may_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHOPMESH_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "secrets.yaml"
    assert kube_secrets.main(["--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "shopmesh-mesh-orders" in secrets_of(out.read_text())
    assert capsys.readouterr().out == ""  # the keys went to the file, not the terminal
