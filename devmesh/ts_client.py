"""Builds the TypeScript client in clients/ts/ from protos/, with npm's tools only (offline):

    python -m devmesh.ts_client [--force] [--out DIR]

1. buf generate (protoc-gen-es, run locally) into clients/ts/gen/
2. tsc --noEmit: the client and the generated code type-check
3. tsc emits JavaScript and .d.ts into clients/ts/dist/lib/
4. esbuild bundles dist/shopmesh.js, which a plain <script> loads as `ShopMesh`
5. npm pack writes the package to clients/ts/dist/shopmesh-client-<version>.tgz

gen/ and dist/ are build output, never committed. A build whose inputs (protos, Google's
protos, clients/ts sources and configuration, the npm lock) have not changed since the last
one is skipped; builds in parallel (test workers) wait for each other.
"""

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devmesh.paths import NODE_BIN, PROTO_DEPS, PROTOS, ROOT

CLIENT = ROOT / "clients" / "ts"
GENERATED = CLIENT / "gen"
DIST = CLIENT / "dist"
LIB = DIST / "lib"
BUNDLE = DIST / "shopmesh.js"
STAMP = DIST / ".inputs.sha256"
TOOLS = ("buf", "protoc-gen-es", "tsc", "esbuild")


class MissingTools(SystemExit):
    pass


@dataclass(frozen=True)
class Outputs:
    bundle: Path
    tarball: Path


def tool(name: str) -> str:
    return str(NODE_BIN / name)


def check_tools() -> None:
    """Fails with one line when node, npm, the npm-installed tools or .protodeps are missing."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    missing += [f"node_modules/.bin/{name}" for name in TOOLS if not (NODE_BIN / name).exists()]
    if missing:
        hint = "install Node.js 20+, then `make install` runs npm ci"
        raise MissingTools(f"ts_client: missing {', '.join(missing)} ({hint})")
    if not any(PROTO_DEPS.rglob("*.proto")):
        raise MissingTools("ts_client: Google's protos are not linked into .protodeps/ (run `make protodeps`)")


def _inputs() -> list[Path]:
    files = [*PROTOS.rglob("*.proto"), *PROTO_DEPS.rglob("*.proto")]
    files += [p for p in (CLIENT / "src").rglob("*") if p.is_file()]
    files += [CLIENT / name for name in ("buf.gen.yaml", "tsconfig.json", "package.json")]
    files += [ROOT / "package-lock.json", ROOT / "buf.yaml", Path(__file__)]
    return sorted(files)


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for path in _inputs():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")  # .protodeps holds links: their targets' content
    return digest.hexdigest()


def tarball_path() -> Path:
    package = json.loads((CLIENT / "package.json").read_text())
    name = package["name"].lstrip("@").replace("/", "-")
    return DIST / f"{name}-{package['version']}.tgz"


def _run(*command: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        shown = " ".join([Path(command[0]).name, *command[1:]])
        raise SystemExit(f"ts_client: `{shown}` failed:\n{output}")
    return done.stdout


def typecheck(project: Path = CLIENT) -> subprocess.CompletedProcess:
    """tsc --noEmit on a project directory (clients/ts, or a copy of it); paths in its
    messages are relative to that directory."""
    return subprocess.run(
        [tool("tsc"), "--noEmit", "--pretty", "false", "-p", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def _build() -> None:
    _run(tool("buf"), "generate", "--template", str(CLIENT.relative_to(ROOT) / "buf.gen.yaml"))
    checked = typecheck()
    if checked.returncode != 0:
        raise SystemExit(f"ts_client: tsc --noEmit failed:\n{(checked.stdout + checked.stderr).strip()}")
    shutil.rmtree(LIB, ignore_errors=True)
    # checked above: this run only writes the JavaScript and declarations
    _run(tool("tsc"), "--noCheck", "-p", str(CLIENT))
    _run(
        tool("esbuild"),
        str(CLIENT / "src" / "index.ts"),
        "--bundle",
        "--format=iife",
        "--global-name=ShopMesh",
        "--target=es2020",
        "--minify",
        "--log-level=warning",
        f"--outfile={BUNDLE}",
    )
    for old in DIST.glob("*.tgz"):
        old.unlink()
    _run("npm", "pack", "--silent", "--pack-destination", str(DIST), cwd=CLIENT)


def build(force: bool = False) -> Outputs:
    """Builds clients/ts unless its inputs are unchanged since the last build."""
    check_tools()
    DIST.mkdir(parents=True, exist_ok=True)
    outputs = Outputs(BUNDLE, tarball_path())
    with open(DIST / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = inputs_digest()
        fresh = STAMP.exists() and STAMP.read_text() == digest
        if force or not fresh or not all(p.exists() for p in (outputs.bundle, outputs.tarball, GENERATED, LIB)):
            STAMP.unlink(missing_ok=True)
            _build()
            STAMP.write_text(digest)
    return outputs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="build even when nothing changed")
    parser.add_argument("--out", type=Path, help="also copy the bundle and the package into this directory")
    args = parser.parse_args(argv)
    outputs = build(force=args.force)
    written = [outputs.bundle, outputs.tarball]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        written = [Path(shutil.copy2(path, args.out)) for path in written]
    print(f"ts_client: {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
