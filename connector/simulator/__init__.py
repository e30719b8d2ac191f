"""A Verba Provisioning API v2 simulator that follows the documented behaviour.

Seed JSON (every key optional):

    {"environments": [{"eid": "0000", "shortName": "default"}],
     "api_users": [{"loginName": "connector", "password": "..."}],
     "users": [{"id": 3, "loginName": "alice@example.com", "eid": "0000"}],
     "extensions": [{"eid": "0000", "extension": "+15550100", "recordingMode": "FULL",
                     "voice": true, "im": false, "video": false, "screenCaptureEnabled": false,
                     "user_id": 3}],
     "recorders": [{"location": "recorder-1", "eid": "0000"}],
     "tokens": ["a fixed token, valid until /_sim/expire-tokens"]}

load_seed checks a seed file whole before anything listens (seed.py): an unknown key, a wrong type or a user
named twice is an error. Without a seed: environment 0000/default, no users, API user connector with password
demo-pw-7002 (state.DEMO_LOGIN, DEMO_PASSWORD), one recording server "recorder-1" (also when the seed has no
"recorders" key; `"recorders": []` means none).
The SOAP endpoint is POST /provisioning; the test control API is under /_sim/ (see control.py).
"""

from __future__ import annotations
