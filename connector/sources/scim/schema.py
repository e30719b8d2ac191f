"""The SCIM schemas we serve (RFC 7643 §4, §8.7), as data: /Schemas renders them, and
request bodies, PATCH paths, filters and responses are all resolved against them.

Attribute names and schema URNs compare case-insensitively (RFC 7643 §2.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Okta pushes custom profile attributes under a namespace of our choosing; mappings/okta.toml reads these.
VERBA_USER = "urn:ietf:params:scim:schemas:extension:verba:2.0:User"


@dataclasses.dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()
    description: str = ""

    def sub(self, name: str) -> Attribute | None:
        return _find(self.sub_attributes, name)

    @property
    def read_only(self) -> bool:
        return self.mutability == "readOnly"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            data["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            data["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            data["subAttributes"] = [sub.to_json() for sub in self.sub_attributes]
        return data


@dataclasses.dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        return _find(self.attributes, name)

    def to_json(self, location: str) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attribute.to_json() for attribute in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{location}/Schemas/{self.id}"},
        }


@dataclasses.dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        """Every attribute a body may name: its schemas' and the common ones (id, externalId, meta)."""
        return (*self.schema.attributes, *COMMON, *(a for schema in self.extensions for a in schema.attributes))

    def schema_for(self, urn: str) -> Schema | None:
        return next((s for s in self.schemas if s.id.casefold() == urn.casefold()), None)

    def extension(self, urn: str) -> Schema | None:
        return next((s for s in self.extensions if s.id.casefold() == urn.casefold()), None)

    def to_json(self, location: str) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": ext.id, "required": False} for ext in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": f"{location}/ResourceTypes/{self.name}"},
        }


def _find(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    folded = name.casefold()
    return next((a for a in attributes if a.name.casefold() == folded), None)


def _string(name: str, **kw: Any) -> Attribute:
    return Attribute(name, **kw)


def _multi(name: str, *, value_type: str = "string", types: tuple[str, ...] = (), **kw: Any) -> Attribute:
    """A multi-valued complex attribute with the usual value/display/type/primary (RFC 7643 §2.4)."""
    value_kw: dict[str, Any] = {"case_exact": value_type != "string"}
    if value_type == "reference":
        value_kw["reference_types"] = ("external",)
    subs = (
        Attribute("value", value_type, **value_kw),
        Attribute("display"),
        Attribute("type", canonical_values=types),
        Attribute("primary", "boolean"),
    )
    return Attribute(name, "complex", multi_valued=True, sub_attributes=subs, **kw)


# Common to every resource (RFC 7643 §3.1); not listed in the schemas' attributes.
ID = Attribute("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server")
EXTERNAL_ID = Attribute("externalId", case_exact=True)
META = Attribute(
    "meta",
    "complex",
    mutability="readOnly",
    sub_attributes=(
        Attribute("resourceType", case_exact=True, mutability="readOnly"),
        Attribute("created", "dateTime", mutability="readOnly"),
        Attribute("lastModified", "dateTime", mutability="readOnly"),
        Attribute("location", "reference", case_exact=True, mutability="readOnly", reference_types=("uri",)),
        Attribute("version", case_exact=True, mutability="readOnly"),
    ),
)
COMMON = (ID, EXTERNAL_ID, META)
USER_NAME = _string("userName", required=True, uniqueness="server")

USER = Schema(
    CORE_USER,
    "User",
    "User Account",
    (
        USER_NAME,
        Attribute(
            "name",
            "complex",
            sub_attributes=tuple(
                Attribute(n)
                for n in ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
            ),
        ),
        _string("displayName"),
        _string("nickName"),
        Attribute("profileUrl", "reference", case_exact=True, reference_types=("external",)),
        _string("title"),
        _string("userType"),
        _string("preferredLanguage"),
        _string("locale"),
        _string("timezone"),
        Attribute("active", "boolean"),
        # Accepted so that Okta's create works, then dropped: never stored, logged or returned.
        Attribute("password", case_exact=True, mutability="writeOnly", returned="never"),
        _multi("emails", types=("work", "home", "other")),
        _multi("phoneNumbers", types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", value_type="reference", types=("photo", "thumbnail")),
        Attribute(
            "addresses",
            "complex",
            multi_valued=True,
            sub_attributes=(
                *(Attribute(n) for n in ("formatted", "streetAddress", "locality", "region", "postalCode", "country")),
                Attribute("type", canonical_values=("work", "home", "other")),
                Attribute("primary", "boolean"),
            ),
        ),
        Attribute(
            "groups",
            "complex",
            multi_valued=True,
            mutability="readOnly",
            sub_attributes=(
                Attribute("value", case_exact=True, mutability="readOnly"),
                Attribute("$ref", "reference", case_exact=True, mutability="readOnly", reference_types=("Group",)),
                Attribute("display", mutability="readOnly"),
                Attribute("type", mutability="readOnly", canonical_values=("direct", "indirect")),
            ),
        ),
        _multi("entitlements"),
        _multi("roles"),
        _multi("x509Certificates", value_type="binary"),
    ),
)

ENTERPRISE = Schema(
    ENTERPRISE_USER,
    "EnterpriseUser",
    "Enterprise User",
    (
        *(_string(n) for n in ("employeeNumber", "costCenter", "organization", "division", "department")),
        Attribute(
            "manager",
            "complex",
            sub_attributes=(
                Attribute("value", case_exact=True),
                Attribute("$ref", "reference", case_exact=True, reference_types=("User",)),
                Attribute("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

VERBA = Schema(
    VERBA_USER,
    "VerbaUser",
    "Verba recording attributes (mappings/okta.toml)",
    (
        _string("verbaUserId", description="The user's Verba user id"),
        _string("recordingPolicy", description='"full", "on-demand" or "none"'),
    ),
)

GROUP = Schema(
    CORE_GROUP,
    "Group",
    "Group",
    (
        # RFC 7643 leaves it to the server; recording rules match groups by name, and Microsoft's validator
        # expects a second group of one name (in any case) to get 409 uniqueness: unique per SCIM client.
        _string("displayName", required=True, uniqueness="server"),
        Attribute(
            "members",
            "complex",
            multi_valued=True,
            sub_attributes=(
                Attribute("value", case_exact=True, mutability="immutable"),
                Attribute(
                    "$ref", "reference", case_exact=True, mutability="immutable", reference_types=("User", "Group")
                ),
                Attribute("type", mutability="immutable", canonical_values=("User", "Group")),
                Attribute("display"),
            ),
        ),
    ),
)

USERS = ResourceType("User", "/Users", USER, (ENTERPRISE, VERBA))
GROUPS = ResourceType("Group", "/Groups", GROUP)
RESOURCE_TYPES = (USERS, GROUPS)
SCHEMAS = (USER, ENTERPRISE, VERBA, GROUP)
