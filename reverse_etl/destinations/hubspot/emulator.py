"""HubSpot CRM v3 contacts emulator: batch upsert by email (<= 100 inputs), batch update by
object id or by email (idProperty; an unknown one is an OBJECT_NOT_FOUND error of a 207), merge of
two contacts (the merged one is gone, its id listed on the primary), batch archive, GDPR delete
(permanent; an email not found is blocklisted and cannot be created again), bearer auth,
207 Multi-Status with per-input errors, ten-secondly rolling rate limit (429)."""

import datetime as dt
import re
import uuid
from typing import ClassVar

import orjson

from cdp.core.emulator import Emulator

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
UPSERT = re.compile(r"^/crm/v3/objects/contacts/batch/upsert$")
ARCHIVE = re.compile(r"^/crm/v3/objects/contacts/batch/archive$")
GDPR_DELETE = re.compile(r"^/crm/v3/objects/contacts/gdpr-delete$")
UPDATE = re.compile(r"^/crm/v3/objects/contacts/batch/update$")
MERGE = re.compile(r"^/crm/v3/objects/contacts/merge$")


def _input_error(key: str, message: str, category: str = "VALIDATION_ERROR") -> dict:
    """One entry of a 207 answer's `errors`: what went wrong with the input `key`."""
    return {"status": "error", "category": category, "message": message, "context": {"ids": [key]}}


def _error(message: str, category: str = "VALIDATION_ERROR") -> dict:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }


class HubSpotEmulator(Emulator):
    example_sync: ClassVar[dict] = {
        "object": "contacts",
        "identifier": {"source": "email", "destination": "email"},
        "fields": {"firstname": "first_name", "lastname": "last_name"},
    }

    def __init__(self, token: str = "test-token", rate_limit=(100, 10.0)):
        super().__init__(token, rate_limit)
        self.contacts: dict[str, dict] = {}  # by lower-case email
        self.upserts_per_email: dict[str, int] = {}
        self.archived: set[str] = set()
        self.gdpr_blocklist: set[str] = set()
        self._next_id = 1000

    def rate_limit_response(self, wait: float):
        calls, period = self.rate_limit
        payload = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING",
            "requestId": str(uuid.uuid4()),
        }
        # HubSpot documents no Retry-After; clients must back off on the window.
        headers = {
            "X-HubSpot-RateLimit-Max": str(calls),
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(period * 1000)),
        }
        return payload, headers

    def handle(self, method, path, headers, body):
        if not self.authorized(headers):
            return (
                401,
                _error("Authentication credentials not found.", "INVALID_AUTHENTICATION"),
                {},
            )
        if method == "POST" and UPSERT.match(path):
            return self._upsert(body)
        if method == "POST" and UPDATE.match(path):
            return self._update(body)
        if method == "POST" and MERGE.match(path):
            return self._merge(body)
        if method == "POST" and ARCHIVE.match(path):
            return self._archive(body)
        if method == "POST" and GDPR_DELETE.match(path):
            return self._gdpr_delete(body)
        return 404, _error(f"No route for {method} {path}", "OBJECT_NOT_FOUND"), {}

    def _inputs(self, body):
        try:
            payload = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return None, (400, _error(f"Invalid input JSON on line 1: {exc}"), {})
        inputs = payload.get("inputs")
        if not isinstance(inputs, list):
            return None, (400, _error("Invalid input: 'inputs' must be a list"), {})
        if len(inputs) > 100:
            return None, (
                400,
                _error(f"Batch input limit exceeded: {len(inputs)} inputs, at most 100"),
                {},
            )
        return inputs, None

    def _upsert(self, body):
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        if any(item.get("idProperty") != "email" for item in inputs):
            return 400, _error("idProperty must be a unique property such as email"), {}
        started = dt.datetime.now(dt.UTC).isoformat()
        results, errors = [], []
        # One lock for the batch: taken per input, two handler threads spent a fifth of their
        # time waiting for it.
        with self.lock:
            for item in inputs:
                key = str(item.get("id", ""))
                email = key.lower()
                if not EMAIL.match(email):
                    errors.append(
                        _input_error(
                            key,
                            f"Property values were not valid: email {key!r} is not a valid "
                            "email address",
                        )
                    )
                    continue
                if email in self.gdpr_blocklist:
                    errors.append(
                        _input_error(
                            key, f"{key!r} was permanently deleted (GDPR) and is blocklisted"
                        )
                    )
                    continue
                new = email not in self.contacts
                if new:
                    self._next_id += 1
                    self.contacts[email] = {"id": str(self._next_id), "properties": {}}
                contact = self.contacts[email]
                contact["properties"].update(item.get("properties", {}))
                contact["properties"]["email"] = email
                self.upserts_per_email[email] = self.upserts_per_email.get(email, 0) + 1
                self.archived.discard(contact["id"])
                results.append(
                    {"id": contact["id"], "new": new, "properties": dict(contact["properties"])}
                )
        payload = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": dt.datetime.now(dt.UTC).isoformat(),
        }
        if errors:
            payload.update(errors=errors, numErrors=len(errors))
        return (207 if errors else 200), payload, {}

    def _find(self, key: str, id_property: str | None) -> str | None:
        """The email a contact is kept under, found by object id or by email."""
        if id_property == "email":
            email = key.lower()
            return email if email in self.contacts else None
        return next(
            (e for e, c in self.contacts.items() if c["id"] == key and key not in self.archived),
            None,
        )

    def _update(self, body):
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        results, errors = [], []
        for item in inputs:
            key, id_property = str(item.get("id", "")), item.get("idProperty")
            if id_property not in (None, "email"):
                return 400, _error("idProperty must be a unique property such as email"), {}
            properties = dict(item.get("properties", {}))
            with self.lock:
                found = self._find(key, id_property)
                if found is None:
                    errors.append(
                        _input_error(
                            key,
                            "Could not get some CONTACT objects, they may be deleted or not "
                            f"exist. Check that ids are valid. [{key}]",
                            "OBJECT_NOT_FOUND",
                        )
                    )
                    continue
                new_email = str(properties.get("email") or found).lower()
                if new_email != found:
                    if not EMAIL.match(new_email) or new_email in self.contacts:
                        errors.append(
                            _input_error(
                                key,
                                f"A contact with the email {new_email!r} already exists or the "
                                "address is not valid",
                            )
                        )
                        continue
                    self.contacts[new_email] = self.contacts.pop(found)
                    self.upserts_per_email[new_email] = self.upserts_per_email.pop(found, 0)
                contact = self.contacts[new_email]
                contact["properties"].update(properties)
                contact["properties"]["email"] = new_email
                self.upserts_per_email[new_email] = self.upserts_per_email.get(new_email, 0) + 1
            results.append({"id": contact["id"], "properties": dict(contact["properties"])})
        payload = {"status": "COMPLETE", "results": results}
        if errors:
            payload.update(errors=errors, numErrors=len(errors))
        return (207 if errors else 200), payload, {}

    def _merge(self, body):
        try:
            payload = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return 400, _error(f"Invalid input JSON on line 1: {exc}"), {}
        primary, merged = str(payload.get("primaryObjectId")), str(payload.get("objectIdToMerge"))
        with self.lock:
            keep, gone = self._find(primary, None), self._find(merged, None)
            if keep is None or gone is None or keep == gone:
                missing = primary if keep is None else merged
                return 404, _error(f"Object {missing} not found", "OBJECT_NOT_FOUND"), {}
            loser = self.contacts.pop(gone)
            self.upserts_per_email.pop(gone, None)
            winner = self.contacts[keep]
            winner.setdefault("mergedObjectIds", []).append(loser["id"])
            for name, value in loser["properties"].items():  # the primary's values win
                winner["properties"].setdefault(name, value)
            answer = {"id": winner["id"], "properties": dict(winner["properties"])}
        return 200, answer | {"mergedObjectIds": list(winner["mergedObjectIds"])}, {}

    def _archive(self, body):
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        with self.lock:
            for item in inputs:
                self.archived.add(str(item.get("id")))
        return 204, None, {}

    def _gdpr_delete(self, body):
        try:
            payload = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return 400, _error(f"Invalid input JSON on line 1: {exc}"), {}
        object_id = str(payload.get("objectId") or "")
        if not object_id:
            return 400, _error("objectId is required"), {}
        by_email = payload.get("idProperty") == "email"
        if payload.get("idProperty") not in (None, "email"):
            return 400, _error("idProperty must be email or absent"), {}
        with self.lock:
            if by_email:
                email = object_id.lower()
                found = email if email in self.contacts else None
                if not found:
                    self.gdpr_blocklist.add(email)
                    return 204, None, {}
            else:
                found = next((e for e, c in self.contacts.items() if c["id"] == object_id), None)
                if not found:
                    return 404, _error(f"Object {object_id} not found", "OBJECT_NOT_FOUND"), {}
            contact = self.contacts.pop(found)
            self.archived.discard(contact["id"])
            self.upserts_per_email.pop(found, None)
        return 204, None, {}

    def live_contacts(self) -> dict[str, dict]:
        return {e: c for e, c in self.contacts.items() if c["id"] not in self.archived}

    def held(self) -> dict[str, dict]:
        return {email: c["properties"] for email, c in self.live_contacts().items()}
