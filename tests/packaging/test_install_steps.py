"""The README's server install steps and its cron example agree with the sample unit and run on a stock Debian.

They need root, users and systemd, so tests/test_readme.py skips them; this checks what can be checked without.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

from tests.packaging.test_systemd_unit import unit_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def install_section() -> str:
    return README[README.index("\n## Installing on a server\n"):README.index("\n## The simulator\n")]


def commands(text: str) -> list[str]:
    """The lines of the code blocks in `text`, comments and blank lines left out."""
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```\n(.*?)```", text, re.S)
             for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_install_steps_make_what_the_unit_expects():
    service = unit_settings()
    user, group, home = service["User"][0], service["Group"][0], service["WorkingDirectory"][0]
    program = service["ExecStart"][0].split()[0]
    steps = commands(install_section())
    assert f"sudo useradd --system --home-dir {home} --shell /usr/sbin/nologin {user}" in steps
    assert f"sudo install -d -m {service['StateDirectoryMode'][0]} -o {user} -g {group} {home}" in steps
    assert f"sudo python3 -m venv {program.removesuffix('/bin/connector')}" in steps
    config = service["ExecStart"][0].split("--config ")[1].replace("%i", "a")
    assert f"sudo {program} init {home} --config {config}" in steps
    assert f"sudo -u {user} {program} db upgrade --config {config}" in steps


def test_the_install_steps_run_on_a_stock_debian():
    """Debian and Ubuntu have python3 but no python, and refuse pip into the system Python (PEP 668)."""
    steps = commands(install_section())
    assert not [step for step in steps if re.search(r"(^|[\s;&|])python(\s|$)", step)]
    assert not [step for step in steps if re.search(r"python3? -m pip", step)]
    assert all(re.search(r"(venv|\.venv)/bin/pip install", step) for step in steps if "pip install" in step)
    # What writes a file of connector's, or gives one to it, needs root.
    assert all(step.startswith("sudo ") for step in steps if "-o connector" in step or "venv /opt" in step)


def cron_line() -> str:
    [line] = [found[1] for found in re.finditer(r"^`(\*/5 \* \* \* \* .*)`\.?$", README, re.M)]
    return line


def test_the_cron_example_runs_as_the_service_user_and_writes_no_file():
    fields = cron_line().split(None, 6)
    assert fields[5] == unit_settings()["User"][0], "an /etc/cron.d line: the user field comes before the command"
    command = fields[6]
    assert "%" not in command, "cron turns % into a new line"
    assert "/tmp" not in command and not re.search(r">(?!&)", command), "no file to write (as root, in /tmp)"


def run_cron_command(tmp_path: Path, exit_status: int, output: str) -> str:
    """The example's command under /bin/sh, as cron runs it, with stand-ins for the connector and mail."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in (("connector", f"echo '{output}'\nexit {exit_status}"),
                         ("mail", f'{{ echo "mail $*"; cat; }} >> {tmp_path / "mailed"}')):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    command = cron_line().split(None, 6)[6].replace("/opt/connector/.venv/bin/connector", str(bin_dir / "connector"))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["/bin/sh", "-c", command], env=env, cwd=tmp_path, check=False, timeout=30)
    mailed = tmp_path / "mailed"
    return mailed.read_text() if mailed.exists() else ""


def test_the_cron_example_mails_a_failed_check_and_nothing_else(tmp_path):
    failed = "CHECK FAILED: 3 dead letters; list them with `connector events list --state dead`"
    assert run_cron_command(tmp_path, 3, failed) == f"mail -s connector needs someone oncall@example.com\n{failed}\n"
    (tmp_path / "mailed").unlink()
    assert run_cron_command(tmp_path, 0, "check ok: nothing to do") == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_the_token_rotation_steps_add_the_new_token_then_keep_only_it(tmp_path):
    """README's SCIM token rotation, run as printed but on a file of ours, owned by us instead of `connector`."""
    section = README[README.index("To rotate the `entra` token"):README.index("What is accepted, the same for")]
    add, keep = [block.strip() for block in re.findall(r"```\n(.*?)```", section, re.S)]
    tokens = tmp_path / "scim-entra"
    tokens.write_text("old-scim-token-0123456789abcdef\n")
    tokens.chmod(0o600)

    def run(step: str) -> None:
        script = step.replace("/etc/connector/scim-entra", str(tokens)).replace("-o connector", f"-o {os.getuid()}")
        subprocess.run(["/bin/sh", "-c", script], check=True, timeout=30)

    run(add)
    old, new = tokens.read_text().split()
    assert old == "old-scim-token-0123456789abcdef" and len(new) == 64
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    run(keep)
    assert tokens.read_text().split() == [new]
