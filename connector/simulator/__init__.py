"""A Verba Provisioning API v2 simulator that follows the documented behaviour.

Seed JSON (every key optional):

    {"environments": [{"eid": "0000", "shortName": "default"}],
     "api_users": [{"loginName": "connector", "password": "..."}],
     "users": [{"id": 3, "loginName": "alice@example.com", "eid": "0000"}],
     "extensions": [{"eid": "0000", "extension": "+15550100", "recordingMode": "FULL",
                     "voice": true, "im": false, "video": false, "screenCaptureEnabled": false,
                     "user_id": 3}]}

Without a seed: environment 0000/default, no users, API user connector/connector.
The SOAP endpoint is POST /provisioning; the test control API is under /_sim/ (see control.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.simulator.app import create_app

__all__ = ["create_app", "load_seed", "serve"]


def load_seed(path: str | Path) -> dict[str, Any]:
    try:
        seed = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the simulator seed {path}: {exc}") from exc
    if not isinstance(seed, dict):
        raise ValueError(f"the simulator seed {path} must be a JSON object with environments, api_users, users, extensions")
    return seed


def serve(host: str, port: int, seed_path: str | None, token_ttl: float) -> None:
    import uvicorn

    seed = load_seed(seed_path) if seed_path else None
    uvicorn.run(create_app(seed, token_ttl=token_ttl), host=host, port=port, log_level="warning", access_log=False)
