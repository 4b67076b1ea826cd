"""Configuration from environment variables, read once at start.

A bad value raises ConfigError with a one-line message; meshkit.server.run()
prints it and exits with status 2 instead of a traceback.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration value is missing or malformed."""


def get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def address(env: Mapping[str, str], name: str, default: str) -> str:
    """A host:port address; the port must be a number from 0 to 65535."""
    value = get(env, name, default)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}={value!r} is not a host:port address")
    return value


def integer(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    value = get(env, name, str(default))
    try:
        parsed = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if parsed < minimum:
        raise ConfigError(f"{name}={value!r} must be at least {minimum}")
    return parsed


def choice(env: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    """One of choices, spelt exactly; None when the variable is unset or empty."""
    value = get(env, name, "")
    if not value:
        return None
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def seconds(env: Mapping[str, str], name: str, default: float, minimum: float | None = None) -> float:
    """A duration in seconds: more than 0, or at least minimum when one is given."""
    value = get(env, name, str(default))
    try:
        parsed = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
    if (minimum is None and not parsed > 0) or (minimum is not None and parsed < minimum):
        raise ConfigError(
            f"{name}={value!r} must be {'more than 0' if minimum is None else f'at least {minimum}'} seconds"
        )
    return parsed


def data_dir(env: Mapping[str, str]) -> Path:
    """SHOPMESH_DATA_DIR, default .data under the repository root; created if missing."""
    path = Path(get(env, "SHOPMESH_DATA_DIR", str(REPO_ROOT / ".data"))).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"SHOPMESH_DATA_DIR={str(path)!r} cannot be created: {error.strerror}") from None
    return path


def database_url(env: Mapping[str, str], name: str, default_file: str) -> str:
    """The SQLAlchemy URL in variable name, or in the file that name_FILE names (a mounted
    Secret: a password in a file stays out of the process's environment, which crash
    reports and `ps e` show); default a SQLite file in the data dir."""
    value = get(env, name, "")
    from_file = get(env, f"{name}_FILE", "")
    if from_file:
        if value:
            raise ConfigError(f"set {name} or {name}_FILE, not both")
        try:
            value = Path(from_file).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{name}_FILE={from_file!r} cannot be read: {error.strerror}") from None
        if not value:
            raise ConfigError(f"{name}_FILE={from_file!r} is empty")
    if value:
        if not value.startswith(("sqlite", "postgresql")):
            raise ConfigError(f"{name} must be a sqlite:/// or postgresql+psycopg:// URL, got {value.split(':')[0]!r}")
        return value
    return f"sqlite:///{data_dir(env) / default_file}"


def environ() -> Mapping[str, str]:
    return os.environ
