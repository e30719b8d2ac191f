"""`connector --version` and the metric connector_build_info both tell the installed package's version."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner
from prometheus_client import REGISTRY

from connector.cli import main
from connector.version import VERSION


def test_version_comes_from_the_package_metadata():
    assert VERSION == version("connector")


def test_connector_version_prints_it_and_exits_0():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"connector {VERSION}\n"


def test_build_info_is_1_with_the_version():
    import connector.ops.metrics  # noqa: F401  (registers the metric)

    assert REGISTRY.get_sample_value("connector_build_info", {"version": VERSION}) == 1
