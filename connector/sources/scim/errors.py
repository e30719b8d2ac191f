"""SCIM errors (RFC 7644 §3.12): an HTTP status, an optional scimType, and a detail that says what to do."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


DETAIL_LIMIT = 1000  # characters of a detail: one that echoes a huge value the client sent keeps what to do


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        if len(detail) > DETAIL_LIMIT:  # the middle goes: the start says what is wrong, the end what to do
            detail = f"{detail[:DETAIL_LIMIT // 2]} … {detail[-(DETAIL_LIMIT // 2 - 3):]}"
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def to_json(self) -> dict[str, Any]:
        # RFC 7644 §3.12: "status" is a string.
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def not_found(resource_type: str, resource_id: str) -> ScimError:
    return ScimError(404, f"{resource_type} {resource_id!r} not found; list /{resource_type}s to find its id")


def precondition_failed(version: str) -> ScimError:
    # RFC 7644 §3.14: a stale If-Match is refused with 412.
    return ScimError(412, f"the resource is now at version {version}; GET it again and retry with that ETag")
