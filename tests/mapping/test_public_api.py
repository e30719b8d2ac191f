from __future__ import annotations

import connector.mapping


def test_exported_names() -> None:
    assert sorted(connector.mapping.__all__) == [
        "ExtensionRecord", "MappedUser", "Mapping", "MappingError", "MappingFailure", "UnresolvedUser",
        "load_mapping", "mapping_digest", "normalize_extension", "parse_mapping",
    ]
    assert all(hasattr(connector.mapping, name) for name in connector.mapping.__all__)
    assert issubclass(connector.mapping.MappingFailure, ValueError)
