"""Files shipped with the connector, found where it is installed (a wheel, pipx, or this source tree).

`connector.toml` is the starter config `connector init` writes (with its directory filled in); `mappings/`
holds the shipped mappings, `simulator-seed.json` the built-in simulator's starting users and
`connector@.service` a sample systemd unit. In the source tree the last three are links to `mappings/` and
`config/` at its top; a wheel holds copies. Nothing here depends on the working directory.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTER_CONFIG = HERE / "connector.toml"
MAPPINGS = HERE / "mappings"
SIMULATOR_SEED = HERE / "simulator-seed.json"
SYSTEMD_UNIT = HERE / "connector@.service"


def default_mapping() -> str:
    """The shipped `mappings/default.toml`: what `[mapping] file` means when the config leaves it out."""
    return str((MAPPINGS / "default.toml").resolve())


def mapping_files() -> list[Path]:
    """The shipped mappings, by name."""
    return sorted(MAPPINGS.glob("*.toml"))
