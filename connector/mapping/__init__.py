"""Declarative mapping: a user's state -> the Verba extension records to push (pure functions, no I/O)."""

from __future__ import annotations

from connector.mapping.loader import MappingError, load_mapping, mapping_digest, parse_mapping
from connector.mapping.mapper import MappedUser, Mapping, MappingFailure, UnresolvedUser
from connector.mapping.normalize import normalize_extension
from connector.records import ExtensionRecord

__all__ = [
    "ExtensionRecord",
    "MappedUser",
    "Mapping",
    "MappingError",
    "MappingFailure",
    "UnresolvedUser",
    "load_mapping",
    "mapping_digest",
    "normalize_extension",
    "parse_mapping",
]
