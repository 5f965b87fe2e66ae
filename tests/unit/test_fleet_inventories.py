"""Fleets from Ansible inventories (read by ansible-core) and ssh_config Host entries:
which hosts, which URIs, which options; no connection is made."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trainlab.errors import TargetError
from trainlab.fleet import Fleet, FleetWarning, NamedTarget
from trainlab.fleet.inventories import (
    UnsupportedHost,
    ansible_targets,
    host_target,
    split_options,
    ssh_config_targets,
)

INI = """\
[web]
web[01:03].example.com ansible_user=deploy

[db]
db1 ansible_host=10.0.0.9 ansible_port=2222 ansible_become=yes ansible_become_user=postgres
db2 ansible_host=fd00::7 ansible_ssh_private_key_file=/keys/db2

[prod:children]
web
db

[prod:vars]
ansible_ssh_private_key_file=~/.ssh/prod

[staging]
web03.example.com

[local]
here ansible_connection=local

[windows]
win1 ansible_connection=winrm
"""

YAML = """\
all:
  vars:
    domain: internal
  children:
    prod:
      children:
        web:
          hosts:
            web[01:03]:
              ansible_host: "{{ inventory_hostname }}.{{ domain }}"
          vars:
            ansible_user: deploy
        db:
          hosts:
            db1:
              ansible_port: "2222"
              ansible_become: true
            db2:
              ansible_connection: ansible.builtin.paramiko_ssh
    staging:
      hosts:
        web03:
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def table(targets: list[NamedTarget]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {t.label: (t.uri, dict(t.options)) for t in targets}


# -------------------------------------------------- one host's variables, mapped
@pytest.mark.parametrize(
    ("variables", "uri", "options"),
    [
        ({}, "ssh://h1", {}),
        (
            {
                "ansible_host": "10.0.0.5",
                "ansible_port": 2222,
                "ansible_user": "ops",
                "ansible_ssh_private_key_file": "~/.ssh/ops",
                "ansible_become": "yes",
                "ansible_become_user": "postgres",
            },
            "ssh://ops@10.0.0.5:2222",
            {"key_file": "~/.ssh/ops", "sudo": True, "sudo_user": "postgres"},
        ),
        # The older ansible_ssh_* names, listed last in Ansible's ssh plugin, win there too.
        (
            {"ansible_host": "a", "ansible_ssh_host": "b", "ansible_ssh_port": "22"},
            "ssh://b:22",
            {},
        ),
        ({"ansible_private_key_file": "/k"}, "ssh://h1", {"key_file": "/k"}),
        ({"ansible_host": "fd00::1", "ansible_user": "a@b"}, "ssh://a%40b@[fd00::1]", {}),
        ({"ansible_connection": "paramiko"}, "ssh://h1", {}),
        ({"ansible_connection": "ansible.builtin.ssh"}, "ssh://h1", {}),
        ({"ansible_connection": "smart", "ansible_become": False}, "ssh://h1", {"sudo": False}),
        # An explicit no wins over a fleet-wide sudo=True; a method that is not used is moot.
        ({"ansible_become": "no", "ansible_become_method": "su"}, "ssh://h1", {"sudo": False}),
        ({"ansible_connection": "local", "ansible_host": "x", "ansible_port": 1}, "local://", {}),
        ({"ansible_connection": "local", "ansible_become": "false"}, "local://", {}),
    ],
)
def test_host_variables_become_uri_and_options(
    variables: dict[str, Any], uri: str, options: dict[str, Any]
) -> None:
    target = host_target("h1", variables)
    assert (target.label, target.uri, dict(target.options)) == ("h1", uri, options)


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"ansible_connection": "winrm"}, "ansible_connection=winrm has no trainlab transport"),
        ({"ansible_connection": "community.docker.docker"}, "community.docker.docker"),
        ({"ansible_become": True, "ansible_become_method": "su"}, "ansible_become_method=su"),
        ({"ansible_connection": "local", "ansible_become": "yes"}, "local:// has no sudo"),
    ],
)
def test_hosts_no_transport_reaches_are_unsupported(variables: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedHost, match=reason) as caught:
        host_target("h1", variables)
    assert caught.value.host == "h1"
    assert str(caught.value).startswith("h1: ")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ansible_port": "ssh"}, "ansible_port='ssh' is not a port number"),
        ({"ansible_port": 70000}, "ansible_port=70000 is not within 1-65535"),
        ({"ansible_port": True}, "is not a port number"),
        ({"ansible_become": "maybe"}, "ansible_become='maybe' is not a boolean"),
        ({"ansible_host": "two words"}, "Ansible host h1: .*spaces"),
    ],
)
def test_bad_values_are_errors_naming_host_and_variable(
    variables: dict[str, Any], message: str
) -> None:
    with pytest.raises(TargetError, match=message) as caught:
        host_target("h1", variables)
    assert not isinstance(caught.value, UnsupportedHost)


# -------------------------------------------------- whole inventories, by ansible-core
def test_ini_inventory_groups_children_ranges_and_variables(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts.ini", INI)
    with pytest.warns(FleetWarning, match=r"1 host\(s\) .* left out.*win1: ansible_connection"):
        targets = table(ansible_targets(inventory))
    key = {"key_file": "~/.ssh/prod"}
    assert targets == {
        "web01.example.com": ("ssh://deploy@web01.example.com", key),
        "web02.example.com": ("ssh://deploy@web02.example.com", key),
        "web03.example.com": ("ssh://deploy@web03.example.com", key),
        "db1": ("ssh://10.0.0.9:2222", {**key, "sudo": True, "sudo_user": "postgres"}),
        # The host's own key wins over its group's.
        "db2": ("ssh://[fd00::7]", {"key_file": "/keys/db2"}),
        "here": ("local://", {}),
    }


@pytest.mark.parametrize(
    ("pattern", "labels"),
    [
        ("web", ["web01.example.com", "web02.example.com", "web03.example.com"]),
        ("web:&staging", ["web03.example.com"]),
        ("prod:!staging", ["web01.example.com", "web02.example.com", "db1", "db2"]),
        ("db*", ["db1", "db2"]),
        ("web[0:1]", ["web01.example.com", "web02.example.com"]),
        ("~db[12]", ["db1", "db2"]),
        ("db1,here", ["db1", "here"]),
    ],
)
def test_ansible_patterns_select_hosts(tmp_path: Path, pattern: str, labels: list[str]) -> None:
    inventory = write(tmp_path / "hosts.ini", INI)
    assert [t.label for t in ansible_targets(inventory, pattern)] == labels


def test_yaml_inventory_templates_group_vars_and_host_vars(tmp_path: Path) -> None:
    inventory = write(tmp_path / "inventory" / "hosts.yml", YAML)
    write(tmp_path / "inventory" / "group_vars" / "db.yml", "ansible_user: dba\n")
    write(tmp_path / "inventory" / "host_vars" / "db1.yml", "ansible_host: 10.1.1.1\n")
    targets = table(ansible_targets(inventory, "prod:!staging"))
    assert targets == {
        "web01": ("ssh://deploy@web01.internal", {}),
        "web02": ("ssh://deploy@web02.internal", {}),
        "db1": ("ssh://dba@10.1.1.1:2222", {"sudo": True}),
        "db2": ("ssh://dba@db2", {}),
    }
    # The directory is an inventory too, as for ansible -i.
    assert [t.label for t in ansible_targets(inventory.parent, "staging")] == ["web03"]


def test_a_template_that_does_not_resolve_names_host_and_variable(tmp_path: Path) -> None:
    inventory = write(
        tmp_path / "hosts.yml", "all:\n  hosts:\n    h1:\n      ansible_host: '{{ nope }}'\n"
    )
    with pytest.raises(TargetError, match=r"Ansible host h1: cannot resolve ansible_host: .*nope"):
        ansible_targets(inventory)


def test_broken_group_vars_and_vaulted_values_are_errors_naming_the_host(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts.ini", "[web]\nw1\n")
    group_vars = write(tmp_path / "group_vars" / "web.yml", "ansible_user: [unclosed\n")
    with pytest.raises(TargetError, match="Ansible host w1: cannot read its variables: YAML"):
        ansible_targets(inventory)
    group_vars.write_text("ansible_user: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n")
    with pytest.raises(TargetError, match="Ansible host w1: cannot resolve ansible_user: "):
        ansible_targets(inventory)


def test_fleet_from_ansible_splits_fleet_and_session_options(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts.ini", INI)
    fleet = Fleet.from_ansible(
        str(inventory),
        "db:local",
        timeout=5,
        max_workers=2,
        key_file="/fleet/key",
        sudo=False,
        agent=False,
        command_timeout=30,
    )
    assert (fleet.timeout, fleet.max_workers) == (5.0, 2)
    assert fleet.uris == ["db1", "db2", "here"]
    specs = {s.label: (s.uri, dict(s.options)) for s in fleet._specs}
    common = {"agent": False, "command_timeout": 30, "mode": "shell", "timeout": 5.0}
    # The hosts' own key_file and sudo win; ssh's options do not go to local://.
    assert specs["db1"] == (
        "ssh://10.0.0.9:2222",
        {**common, "key_file": "~/.ssh/prod", "sudo": True, "sudo_user": "postgres"},
    )
    assert specs["db2"] == ("ssh://[fd00::7]", {**common, "key_file": "/keys/db2", "sudo": False})
    assert specs["here"] == ("local://", {"command_timeout": 30, "mode": "shell"})


def test_fleet_from_ansible_errors(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts.ini", INI)
    with pytest.raises(TargetError, match=r"no Ansible inventory at .*missing\.ini"):
        Fleet.from_ansible(str(tmp_path / "missing.ini"))
    with pytest.raises(TargetError, match=r"pattern 'nope' matches no host .* groups: db, local"):
        Fleet.from_ansible(str(inventory), "nope")
    with pytest.raises(TargetError, match=r"unknown option\(s\) 'kye_file' for local:// or ssh://"):
        Fleet.from_ansible(str(inventory), kye_file="x")
    with pytest.raises(TargetError, match=r"no host that 'windows' selects .* win1: "):
        Fleet.from_ansible(str(inventory), "windows")
    with pytest.raises(TargetError, match="non-empty string"):
        Fleet.from_ansible(str(inventory), "")
    broken = write(tmp_path / "broken.ini", "[web\nthis is not = an inventory\n")
    with pytest.raises(TargetError, match=r"Ansible found no hosts in .*broken\.ini"):
        Fleet.from_ansible(str(broken))


def test_without_ansible_core_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = write(tmp_path / "hosts.ini", INI)
    monkeypatch.setitem(sys.modules, "ansible.inventory.manager", None)  # import fails
    with pytest.raises(TargetError, match=r"needs ansible-core: pip install 'trainlab\[ansible\]'"):
        Fleet.from_ansible(str(inventory))


def test_reading_an_inventory_leaves_home_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    inventory = write(tmp_path / "hosts.ini", INI)
    Fleet.from_ansible(str(inventory), "web")
    assert list(home.iterdir()) == []


# -------------------------------------------------- ssh_config Host entries
SSH_CONFIG = """\
Host *
    ServerAliveInterval 30

Host web1 web2 web3
    User deploy

Host db-1
    HostName 10.0.0.9
    Port 2222

Host *.internal !bastion.internal
    ProxyJump bastion.internal

Host bastion.internal
    User ops

Host Mixed
    HostName 10.0.0.10
"""


@pytest.mark.parametrize(
    ("pattern", "labels"),
    [
        ("*", ["bastion.internal", "db-1", "web1", "web2", "web3"]),
        ("web*", ["web1", "web2", "web3"]),
        ("web*,!web2", ["web1", "web3"]),
        ("db-1,bastion.*", ["bastion.internal", "db-1"]),
        ("web?", ["web1", "web2", "web3"]),
    ],
)
def test_ssh_config_concrete_hosts_that_match(
    tmp_path: Path, pattern: str, labels: list[str]
) -> None:
    config = write(tmp_path / "config", SSH_CONFIG)
    with pytest.warns(FleetWarning) if pattern == "*" else contextlib.nullcontext():
        targets = ssh_config_targets(pattern, config)
    assert [t.label for t in targets] == labels
    # Each target reads the file when it connects, as connect("ssh://NAME") does.
    assert {t.uri for t in targets} == {f"ssh://{label}" for label in labels}
    assert {t.options["ssh_config"] for t in targets} == {str(config)}


def test_ssh_config_host_names_with_capitals_are_left_out_with_the_fix(tmp_path: Path) -> None:
    config = write(tmp_path / "config", SSH_CONFIG)
    with pytest.warns(FleetWarning, match="Mixed: write the Host name in lower case"):
        ssh_config_targets("*", config)
    with pytest.raises(TargetError, match="lower case"):
        ssh_config_targets("Mixed", config)


def test_fleet_from_ssh_config_options_and_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".ssh" / "config", SSH_CONFIG)
    fleet = Fleet.from_ssh_config("web*", timeout=3, look_for_keys=False, ssh_config="")
    assert fleet.uris == ["web1", "web2", "web3"]
    assert fleet.timeout == 3.0
    spec = fleet._specs[0]
    # The file the hosts come from wins over an ssh_config option.
    assert dict(spec.options) == {
        "look_for_keys": False,
        "ssh_config": str(tmp_path / ".ssh" / "config"),
        "mode": "shell",
        "timeout": 3.0,
    }


def test_fleet_from_ssh_config_errors(tmp_path: Path) -> None:
    config = write(tmp_path / "config", SSH_CONFIG)
    with pytest.raises(TargetError, match="no OpenSSH client config at"):
        Fleet.from_ssh_config(path=str(tmp_path / "nope"))
    with pytest.raises(TargetError, match=r"'db2' matches no Host .* hosts: Mixed, bastion"):
        Fleet.from_ssh_config("db2", str(config))
    with pytest.raises(TargetError, match=r"unknown option\(s\) 'sudoo' for ssh://"):
        Fleet.from_ssh_config("web1", str(config), sudoo=True)
    included = write(tmp_path / "included", "Include ~/.ssh/config.d/*\nHost a\n  User x\n")
    with pytest.warns(FleetWarning, match="Include lines"):
        assert Fleet.from_ssh_config(path=str(included)).uris == ["a"]


def test_split_options_takes_the_fleets_keyword_parameters() -> None:
    fleet, session = split_options(Fleet, {"timeout": 1, "deadline": 2, "sudo": True})
    assert (fleet, session) == ({"timeout": 1, "deadline": 2}, {"sudo": True})


def test_named_targets_label_rows_and_take_their_own_options() -> None:
    fleet = Fleet(
        [NamedTarget("a", "mock://x", {"responses": {"id": "a\n"}}), NamedTarget("b", "mock://y")],
        responses={"id": "fleet\n"},
    )
    frame = fleet.run("id", progress=False).frame
    assert frame[["target", "stdout"]].values.tolist() == [["a", "a\n"], ["b", "fleet\n"]]
    with pytest.raises(TargetError, match="needs a label"):
        Fleet([NamedTarget("", "mock://x")])
