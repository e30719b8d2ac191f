"""The SCIM 2.0 source: Entra ID, Okta and other identity providers provision users and groups here."""

from __future__ import annotations

from connector.sources.scim.app import create_scim_app
from connector.sources.scim.auth import ScimTokens

__all__ = ["ScimTokens", "create_scim_app"]
