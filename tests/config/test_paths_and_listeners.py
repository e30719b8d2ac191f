"""Config problems that pointed at the wrong fix: a relative path read from another directory than the config's
paths assume, a port out of range, an address that is not this host's."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from connector.config import ConfigError, load_config
from connector.mapping import MappingError, load_mapping
from connector.runtime import Connector
from tests.config.helpers import config_with, problems


def test_a_relative_path_that_is_not_found_says_which_directory_it_was_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config of relative paths (the repository's names config/simulator-seed.json) used from another directory:
    the file exists but is not found, and the message named only the path."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "seed.json").write_text("{}")
    (tmp_path / "pw").write_text("secret")
    config = config_with(tmp_path, '[simulator]\nseed = "config/seed.json"\n'
                                   '[target]\nurl = "http://verba:7002/provisioning"\nlogin = "connector"\n'
                                   'password_file = "pw"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    [password] = problems(config)
    assert f"target.password_file 'pw' cannot be read (No such file or directory (a relative path, read from the " \
           f"current directory, {elsewhere})); check the path and permissions" in password
    monkeypatch.chdir(tmp_path)
    load_config(config)  # from the directory they are relative to: found


def test_a_seed_and_a_mapping_not_found_from_here_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_with(tmp_path, '[simulator]\nseed = "config/seed.json"\n')  # no [target]: the simulator
    monkeypatch.chdir(tmp_path)
    [seed] = problems(config)
    assert seed.endswith(f"simulator.seed 'config/seed.json' is not a file (a relative path, read from the current "
                         f"directory, {tmp_path}); fix the path (without the key the simulator starts empty)")
    with pytest.raises(MappingError, match=re.escape(f"current directory, {tmp_path})); check [mapping] file")):
        load_mapping("mappings/mine.toml")
    with pytest.raises(MappingError) as absolute:
        load_mapping(tmp_path / "mine.toml")
    assert "relative path" not in str(absolute.value)


def test_a_port_out_of_range_is_named_as_such(tmp_path: Path) -> None:
    [listen] = problems(config_with(tmp_path, '[scim]\nlisten = "127.0.0.1:80800"\n'))
    assert listen.endswith("scim.listen is '127.0.0.1:80800': port 80800 is out of range; use 1 to 65535, such as "
                           '"127.0.0.1:8080"')


def test_an_address_that_is_not_this_hosts_is_named_as_such(tmp_path: Path) -> None:
    with socket.socket() as probe:  # TEST-NET-1 (RFC 5737): never one of this host's addresses
        try:
            probe.bind(("192.0.2.1", 0))
        except OSError:
            pass
        else:
            pytest.skip("this host has 192.0.2.1")
    connector = Connector(load_config(config_with(tmp_path, '[scim]\nlisten = "192.0.2.1:18080"\n')))
    try:
        with pytest.raises(ConfigError) as refused:
            connector.serve(lambda scope, receive, send: None, "192.0.2.1", 18080, "scim.listen")
    finally:
        connector.store.close()
    assert "the address is not one of this host's: set scim.listen to one of its addresses (or 0.0.0.0)" \
        in str(refused.value)
