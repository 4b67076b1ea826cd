"""Which Debian packages a make target still has to install."""

from devmesh.system_packages import missing


def test_only_what_is_missing_is_named(tmp_path):
    present = tmp_path / "tool"
    present.touch()
    wanted = {"sh": "dash", "no-such-command-here": "some-package", str(present): "x", str(tmp_path / "gone"): "y"}
    assert missing(wanted) == ["some-package", "y"]
