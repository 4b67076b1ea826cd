"""`python -m devmesh.contract [--against REF]`: fails when the API breaks its clients.

Two checks compare the protos as they are now with a baseline:

- `buf breaking` (FILE rules, as in buf.yaml): a renamed or renumbered field, a
  removed enum value, message or method, and so on.
- the REST mapping: the `google.api.http` rule (verb, path, body, response_body,
  additional_bindings) of every method of the baseline must be the same now; buf
  breaking does not look at options. A new method may bring a new rule; an existing
  method gaining one counts as a change too (it would open an internal method to REST).

The baseline is the newest `v*` tag (by version), else HEAD~1; its committed
gen/shopmesh.pb is read with `git show`, so no network and no .protodeps of the
past are needed. That descriptor set, rather than a rebuild of the baseline's protos,
is the contract: it is what the baseline's clients were compiled against
(`make gen-check` keeps it built from the protos of the same commit).

The current side is `buf build` of the workspace, not the committed gen/shopmesh.pb:
the protos are the source of truth, so a break is caught even before `make gen`.
protoc (baseline) and buf (now) write the same descriptors for our files; Google's
files differ between the two (each bundles its own descriptor.proto) and are not ours,
so they are left out, as buf.yaml leaves out .protodeps.

A clone without a baseline (a single commit, a shallow clone of depth 1, or a baseline
older than gen/shopmesh.pb) has nothing to compare: the check says so and passes.

Exit status: 0 compatible (or no baseline), 1 one line per break, 2 usage or
environment error (buf missing, no .protodeps, an unknown --against).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, text_format

from devmesh.paths import DESCRIPTOR_SET, NODE_BIN, PROTO_DEPS, ROOT

# where a commit holds its descriptor set
DESCRIPTOR_PATH = DESCRIPTOR_SET.relative_to(ROOT).as_posix()
# buf.yaml's breaking rules, for images: its `ignore: [.protodeps]` is a workspace
# path, while in an image Google's files are named google/...
BREAKING_CONFIG = json.dumps({"version": "v2", "breaking": {"use": ["FILE"], "ignore": ["google"]}})
# buf breaking's exit status when it found breaks (other failures exit 1)
BUF_BREAKS = 100


class ContractError(Exception):
    """The check could not run (exit status 2)."""


def find_buf(root: Path = ROOT) -> str:
    buf = root / NODE_BIN.relative_to(ROOT) / "buf"
    if not buf.is_file():
        raise ContractError(f"buf not found at {buf}: run `make install`")
    return str(buf)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError as error:
        raise ContractError("git not found") from error


def _commit(root: Path, ref: str) -> str | None:
    result = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return result.stdout.decode().strip() if result.returncode == 0 else None


def default_ref(root: Path = ROOT) -> str | None:
    """The newest `v*` release tag, else HEAD~1, else None (no baseline in this clone)."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise ContractError(f"{root} is not a git repository: no baseline to compare with")
    tags = _git(root, "tag", "--list", "v*", "--sort=-version:refname").stdout.decode().split()
    for ref in [*tags, "HEAD~1"]:
        if _commit(root, ref):
            return ref
    return None


def descriptor_at(ref: str, root: Path = ROOT) -> bytes | None:
    """The committed descriptor set of ref; None if ref has none (older than gen/)."""
    commit = _commit(root, ref)
    if commit is None:
        raise ContractError(f"unknown revision {ref!r}")
    result = _git(root, "show", f"{commit}:{DESCRIPTOR_PATH}")
    return result.stdout if result.returncode == 0 else None


def build_image(workspace: Path, out: Path, buf: str) -> Path:
    """buf build of a workspace (buf.yaml with protos/ and .protodeps/) into out."""
    if not (workspace / PROTO_DEPS.name).is_dir():
        raise ContractError(f"{workspace / PROTO_DEPS.name} is missing: run `make protodeps`")
    result = subprocess.run([buf, "build", str(workspace), "-o", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ContractError(f"buf build failed:\n{result.stderr.strip()}")
    return out


def buf_breaks(current: Path, baseline: Path, buf: str) -> list[str]:
    """buf breaking's findings in our files, one line each."""
    command = [buf, "breaking", str(current), "--against", str(baseline), "--config", BREAKING_CONFIG]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, BUF_BREAKS):
        raise ContractError(f"buf breaking failed:\n{result.stderr.strip()}")
    return result.stdout.splitlines()


def http_rules(descriptor_set: bytes) -> dict[str, str]:
    """Fully qualified method name -> its google.api.http rule as one line of text."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    rules = {}
    for file in files:
        if file.name.startswith("google/"):
            continue
        for service in file.service:
            for method in service.method:
                rule = _http_rule(method.options)
                name = f"{file.package}.{service.name}.{method.name}"
                rules[name] = "" if rule is None else text_format.MessageToString(rule, as_one_line=True)
    return rules


def _http_rule(options: descriptor_pb2.MethodOptions) -> http_pb2.HttpRule | None:
    """A method's google.api.http rule; None where it has none, which differs from an empty rule."""
    # googleapis-common-protos' annotations_pb2.pyi declares `http` a plain FieldDescriptor,
    # not the MethodOptions extension it is
    if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]  # stub: not typed as an extension
        return None
    return options.Extensions[annotations_pb2.http]  # type: ignore[index]  # stub: not typed as an extension


def rest_breaks(current: bytes, baseline: bytes) -> list[str]:
    """One line per baseline method whose REST mapping changed or went away."""
    before, after = http_rules(baseline), http_rules(current)
    breaks = []
    for method, rule in sorted(before.items()):
        if method not in after:
            if rule:
                breaks.append(f"{method}: REST mapping {{{rule}}} removed with the method")
        elif after[method] != rule:
            breaks.append(f"{method}: REST mapping changed from {{{rule}}} to {{{after[method]}}}")
    return breaks


def check(current: Path, baseline: Path, buf: str) -> list[str]:
    """Every break of the current image against the baseline's, one line each."""
    return buf_breaks(current, baseline, buf) + rest_breaks(current.read_bytes(), baseline.read_bytes())


def _baseline(against: str | None, root: Path) -> tuple[str, bytes] | str:
    """(ref, descriptor set), or why there is no baseline (only without --against)."""
    ref = against or default_ref(root)
    if ref is None:
        return "no v* tag and no HEAD~1 (a single-commit or shallow clone)"
    descriptor = descriptor_at(ref, root)
    if descriptor is not None:
        return ref, descriptor
    if against:
        raise ContractError(f"{ref} has no {DESCRIPTOR_PATH} to compare with")
    return f"{ref} has no {DESCRIPTOR_PATH} (it predates the committed descriptor set)"


def run(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh.contract", description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REF", help="baseline revision (default: newest v* tag, else HEAD~1)")
    args = parser.parse_args(argv)
    try:
        baseline = _baseline(args.against, root)
        if isinstance(baseline, str):
            print(f"contract: no baseline to compare with: {baseline}; nothing can break, passing")
            return 0
        ref, descriptor = baseline
        buf = find_buf(root)
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) / "baseline.binpb"
            base.write_bytes(descriptor)
            breaks = check(build_image(root, Path(tmp) / "current.binpb", buf), base, buf)
    except ContractError as error:
        print(f"contract: {error}", file=sys.stderr)
        return 2
    for line in breaks:
        print(line)
    if breaks:
        print(f"contract: {len(breaks)} break(s) against {ref}", file=sys.stderr)
        return 1
    print(f"contract: compatible with {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
