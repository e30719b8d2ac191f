"""`connector init DIR`: a starter config that validates from anywhere, the shipped mappings, no overwrites."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from connector import shipped
from connector.cli import main
from connector.config import load_config
from connector.mapping import load_mapping

ROOT = Path(__file__).resolve().parents[2]


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["init", *args])
    return result.exit_code, result.output


def test_init_writes_a_starter_config_and_the_shipped_mappings(tmp_path, monkeypatch):
    home = tmp_path / 'a "quoted" dir'
    code, output = init(str(home))
    assert code == 0, output
    assert sorted(p.name for p in (home / "mappings").iterdir()) == ["ad.toml", "default.toml", "entra.toml",
                                                                     "okta.toml"]
    for name in ("default.toml", "okta.toml"):
        assert (home / "mappings" / name).read_bytes() == (ROOT / "mappings" / name).read_bytes()
    assert (home / "simulator-seed.json").read_bytes() == (ROOT / "config" / "simulator-seed.json").read_bytes()
    monkeypatch.chdir(tmp_path)  # every path in the config is absolute: it means the same from anywhere
    config = load_config(home / "connector.toml")
    assert config.uses_simulator and config.simulator.seed == str(home / "simulator-seed.json")
    assert config.store.url == f"sqlite:///{home}/var/connector.db"
    assert config.mapping_file == str(home / "mappings" / "default.toml")
    load_mapping(config.mapping_file)
    text = (home / "connector.toml").read_text()
    assert "# [target]\n# url = " in text and "@DIR@" not in text
    for step in ("validate-config --config", "db upgrade --config", "connector run --config", "systemd unit"):
        assert step in output
    assert str(shipped.SYSTEMD_UNIT.resolve()) in output


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    assert init(str(tmp_path))[0] == 0
    (tmp_path / "mappings" / "default.toml").write_text("# mine\n")
    code, output = init(str(tmp_path))
    assert code == 1 and "exist already" in output and "--force" in output and "nothing was written" in output
    assert (tmp_path / "mappings" / "default.toml").read_text() == "# mine\n"
    code, output = init(str(tmp_path), "--force")
    assert code == 0, output
    assert (tmp_path / "mappings" / "default.toml").read_bytes() == (ROOT / "mappings" / "default.toml").read_bytes()


def test_init_writes_the_config_where_asked(tmp_path):
    config = tmp_path / "etc" / "a.toml"
    code, output = init(str(tmp_path / "state"), "--config", str(config))
    assert code == 0, output
    assert not (tmp_path / "state" / "connector.toml").exists()
    assert tomllib.loads(config.read_text())["store"]["url"] == f"sqlite:///{tmp_path / 'state'}/var/connector.db"
    assert f"--config {config}" in output


def test_a_config_without_a_mapping_file_uses_the_shipped_default(tmp_path, monkeypatch):
    (tmp_path / "c.toml").write_text("")
    monkeypatch.chdir(tmp_path)  # no mappings/ here
    config = load_config(tmp_path / "c.toml")
    assert Path(config.mapping_file).is_absolute()
    assert Path(config.mapping_file).read_bytes() == (ROOT / "mappings" / "default.toml").read_bytes()
    load_mapping(config.mapping_file)


def test_the_shipped_files_are_those_of_the_source_tree():
    assert [p.name for p in shipped.mapping_files()] == sorted(p.name for p in (ROOT / "mappings").glob("*.toml"))
    assert shipped.SYSTEMD_UNIT.read_bytes() == (ROOT / "config" / "connector@.service").read_bytes()
    assert shipped.SIMULATOR_SEED.read_bytes() == (ROOT / "config" / "simulator-seed.json").read_bytes()
