"""userName compares one way everywhere (RFC 7643 §4.1.1, caseExact false: NFC, any case): uniqueness, filters and
PATCH value paths, for users stored today and for those stored by earlier versions under older keys, on both
store backends."""

from __future__ import annotations

import contextlib
import logging
import unicodedata
from collections.abc import Iterator

import httpx
import pytest

from connector.dn import fold
from connector.sources.scim import create_scim_app
from connector.sources.scim.filters import COMPARISONS
from connector.store import ScimResource, ScimValue, Store
from tests.scim.helpers import CONFIG, client_for, patch
from tests.scim.live import serve

NOW = "2026-01-01T00:00:00.000000Z"
NFC_JOSE = unicodedata.normalize("NFC", "José@Example.com")
NFD_JOSE = unicodedata.normalize("NFD", "José@Example.com")


def store_before(store: Store, user_id: str, user_name: str, key: str) -> None:
    """A User as an earlier version stored it: keyed `key`, its userName searchable as sent."""
    with store.scim_transaction("entra") as tx:
        body = {"userName": user_name}
        tx.put(ScimResource("entra", "User", user_id, body, 1, NOW, NOW, key), [ScimValue("userName", 0, user_name)])


@contextlib.contextmanager
def started(store: Store) -> Iterator[httpx.Client]:
    """The endpoint started on `store` as it is: what an upgrade finds."""
    with serve(create_scim_app(store, CONFIG)) as url, client_for(url) as api:
        yield api


def deactivate(api: httpx.Client, user_id: str) -> httpx.Response:
    return patch(api, f"/Users/{user_id}", {"op": "replace", "path": "active", "value": False})


def found(api: httpx.Client, text: str) -> list[str]:
    response = api.get("/Users", params={"filter": text})
    assert response.status_code == 200, response.text
    return [user["id"] for user in response.json()["Resources"]]


def test_users_keyed_by_the_folded_name_compare_as_logins_now(store: Store) -> None:
    """Before 02e552e a userName's key was `fold`ed: the fi ligature and fi, or ß and ss, were one name."""
    store_before(store, "u-fiona", "\ufb01ona@example.com", fold("\ufb01ona@example.com"))
    store_before(store, "u-strasse", "Straße@example.com", fold("Straße@example.com"))
    with started(store) as api:
        # Other logins to Verba: not taken
        assert api.post("/Users", json={"userName": "fiona@example.com"}).status_code == 201
        assert api.post("/Users", json={"userName": "STRASSE@example.com"}).status_code == 201
        # The same logins: taken, in any case
        for name in ("\ufb01ona@example.com", "\ufb01ONA@EXAMPLE.COM", "STRAßE@example.com"):
            duplicate = api.post("/Users", json={"userName": name})
            assert (duplicate.status_code, duplicate.json()["scimType"]) == (409, "uniqueness"), name
        assert found(api, 'userName eq "\ufb01ona@example.com"') == ["u-fiona"]
        assert found(api, 'userName eq "straße@example.com"') == ["u-strasse"]
        assert all(deactivate(api, user_id).status_code == 200 for user_id in ("u-fiona", "u-strasse"))


def test_a_user_keyed_by_its_lower_cased_name_in_another_form_is_found_and_taken(store: Store) -> None:
    """Before 8db0293 a userName's key was lower-cased alone, in the form the IdP sent (here decomposed)."""
    store_before(store, "u-jose", NFD_JOSE, NFD_JOSE.lower())
    with started(store) as api:
        assert found(api, f'userName eq "{NFC_JOSE.upper()}"') == ["u-jose"]
        assert found(api, f'userName eq "{NFD_JOSE}"') == ["u-jose"]
        duplicate = api.post("/Users", json={"userName": NFC_JOSE})
        assert (duplicate.status_code, duplicate.json()["scimType"]) == (409, "uniqueness")
        assert "u-jose" in duplicate.json()["detail"]
        assert deactivate(api, "u-jose").json()["active"] is False


def test_two_users_of_one_login_stored_before_stay_writable_and_the_login_stays_taken(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Keyed lower-cased alone, composed and decomposed José were two users; each must stay writable (a deactivation
    must not be refused), and the login taken while either is left."""
    store_before(store, "u-nfc", NFC_JOSE, NFC_JOSE.lower())
    store_before(store, "u-nfd", NFD_JOSE, NFD_JOSE.lower())
    with caplog.at_level(logging.WARNING, logger="connector.scim"):
        with started(store) as api:
            assert sorted(found(api, f'userName eq "{NFC_JOSE}"')) == ["u-nfc", "u-nfd"]
            for user_id in ("u-nfc", "u-nfd"):
                assert deactivate(api, user_id).json()["active"] is False
            assert api.post("/Users", json={"userName": NFC_JOSE.upper()}).status_code == 409
            assert api.delete("/Users/u-nfc").status_code == 204
            assert api.post("/Users", json={"userName": NFC_JOSE.upper()}).status_code == 409
            assert api.delete("/Users/u-nfd").status_code == 204
            assert api.post("/Users", json={"userName": NFC_JOSE.upper()}).status_code == 201
    warned = [r.getMessage() for r in caplog.records if "u-nfd" in r.getMessage()]
    assert len(warned) == 1 and "u-nfc" in warned[0]


def test_resources_are_read_again_only_when_the_comparisons_or_the_unicode_version_change(store: Store) -> None:
    """A start reads every resource only when the store's resources were stored under other comparisons: on a large
    tenant that read is seconds and hundreds of MB at each start."""
    store_before(store, "u-jose", NFD_JOSE, NFD_JOSE.lower())
    with started(store):
        assert store.scim_comparisons() == COMPARISONS
    assert key_of(store, "u-jose") == NFC_JOSE.lower()
    store_before(store, "u-zoe", "Zoë@Example.com", "an older key")  # what no start since has read
    with started(store) as api:
        assert found(api, 'userName eq "zoë@example.com"') == ["u-zoe"]
    assert key_of(store, "u-zoe") == "an older key"
    older_python = COMPARISONS.replace(unicodedata.unidata_version, "9.0.0")  # Python 3.6
    store.set_scim_comparisons(older_python)
    with started(store):
        assert store.scim_comparisons() == COMPARISONS
    assert key_of(store, "u-zoe") == "zoë@example.com"


def test_a_user_kept_without_its_key_gets_it_at_the_start_after_the_other_is_deleted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store_before(store, "u-nfc", NFC_JOSE, NFC_JOSE.lower())
    store_before(store, "u-nfd", NFD_JOSE, NFD_JOSE.lower())
    for _ in range(2):  # warned at every start, not only the one that re-keyed them
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="connector.scim"), started(store):
            pass
        assert ["u-nfd" in r.getMessage() and "u-nfc" in r.getMessage() for r in caplog.records] == [True]
    with started(store) as api:
        assert api.delete("/Users/u-nfc").status_code == 204
    assert key_of(store, "u-nfd") is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.scim"), started(store) as api:
        duplicate = api.post("/Users", json={"userName": NFC_JOSE.upper()})
        assert (duplicate.status_code, duplicate.json()["scimType"]) == (409, "uniqueness")
    assert key_of(store, "u-nfd") == NFC_JOSE.lower() and caplog.records == []


def key_of(store: Store, user_id: str) -> str | None:
    stored = store.scim_get("entra", "User", user_id)
    assert stored is not None
    return stored.unique_key


def test_user_name_filters_compare_in_any_unicode_form_and_case(api: httpx.Client) -> None:
    composed = api.post("/Users", json={"userName": NFC_JOSE}).json()["id"]
    decomposed = api.post("/Users", json={"userName": unicodedata.normalize("NFD", "Zoë@Example.com")}).json()["id"]
    for form in ("NFC", "NFD"):
        def text(value: str, form: str = form) -> str:
            return unicodedata.normalize(form, value)

        assert found(api, text('userName eq "josé@example.com"')) == [composed]
        assert found(api, text('userName co "OSÉ@"')) == [composed]
        assert found(api, text('userName sw "JOSÉ"')) == [composed]
        assert found(api, text('userName ew "é@example.com"')) == [composed]
        assert found(api, text('userName eq "ZOË@example.com"')) == [decomposed]
        assert found(api, text('userName co "oë"')) == [decomposed]
        assert found(api, text('userName sw "zoë@"')) == [decomposed]


def test_patch_value_paths_name_elements_in_any_unicode_form(api: httpx.Client) -> None:
    email = unicodedata.normalize("NFC", "josé@example.com")
    user_id = api.post("/Users", json={"userName": "j@example.com", "emails": [{"type": "work", "value": email}]})
    user_id = user_id.json()["id"]
    again = unicodedata.normalize("NFD", email.upper())
    added = patch(api, f"/Users/{user_id}", {"op": "add", "path": "emails", "value": [{"type": "work",
                                                                                        "value": again}]})
    assert [e["value"] for e in added.json()["emails"]] == [email]  # the same address: not stored twice
    removed = patch(api, f"/Users/{user_id}", {"op": "remove", "path": f'emails[value eq "{again}"]'})
    assert removed.status_code == 200 and "emails" not in removed.json()
