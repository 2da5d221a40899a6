"""Salesforce sObject Collections emulator: PATCH upsert by external id (<= 200 records of one
type, allOrNone false), one result per record in input order, field validation errors; DELETE
by ids (<= 200), one DeleteResult per id in the order given."""

import re
from typing import ClassVar
from urllib.parse import parse_qs

import orjson

from cdp.core.emulator import Emulator

ROUTE = re.compile(r"^/services/data/v\d+\.\d+/composite/sobjects/(\w+)/(\w+)$")
DELETE_ROUTE = re.compile(r"^/services/data/v\d+\.\d+/composite/sobjects\?(.*)$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
# An 18-character id starts with its object's key prefix (custom objects: a00-a0Z)
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006"}


class SalesforceEmulator(Emulator):
    example_sync: ClassVar[dict] = {
        "object": "Contact",
        "identifier": {"source": "profile_id", "destination": "CDP_Profile_Id__c"},
        "fields": {"FirstName": "first_name", "LastName": "last_name"},
    }

    def __init__(self, token: str = "test-token", rate_limit=None):
        super().__init__(token, rate_limit)
        self.records: dict[tuple[str, str], dict] = {}
        self.upserts_per_key: dict[str, int] = {}
        self._next = 1

    def handle(self, method, path, headers, body):
        if not self.authorized(headers):
            return (
                401,
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                {},
            )
        deleting = DELETE_ROUTE.match(path)
        if method == "DELETE" and deleting:
            return self._delete(parse_qs(deleting.group(1)))
        route = ROUTE.match(path)
        if method != "PATCH" or not route:
            return (
                404,
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
                {},
            )
        sobject, ext_field = route.groups()
        payload = orjson.loads(body or b"{}")
        records = payload.get("records", [])
        if len(records) > 200:
            return (
                400,
                [
                    {
                        "message": "Maximum size of request reached. Maximum size of request "
                        "is 200 records.",
                        "errorCode": "EXCEEDED_ID_LIMIT",
                    }
                ],
                {},
            )
        results = []
        for record in records:
            if record.get("attributes", {}).get("type") != sobject:
                return (
                    400,
                    [
                        {
                            "message": "Record type does not match the URL",
                            "errorCode": "INVALID_TYPE",
                        }
                    ],
                    {},
                )
            key = str(record.get(ext_field) or "")
            email = record.get("Email")
            if not key:
                results.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "REQUIRED_FIELD_MISSING",
                                "message": f"Required fields are missing: [{ext_field}]",
                                "fields": [ext_field],
                            }
                        ],
                    }
                )
                continue
            if email is not None and not EMAIL.match(str(email).lower()):
                results.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "INVALID_EMAIL_ADDRESS",
                                "message": f"Email: invalid email address: {email}",
                                "fields": ["Email"],
                            }
                        ],
                    }
                )
                continue
            with self.lock:
                created = (sobject, key) not in self.records
                if created:
                    prefix = KEY_PREFIXES.get(sobject, "a00")
                    self.records[(sobject, key)] = {"Id": f"{prefix}{self._next:015d}"}
                    self._next += 1
                stored = self.records[(sobject, key)]
                stored.update({k: v for k, v in record.items() if k != "attributes"})
                self.upserts_per_key[key] = self.upserts_per_key.get(key, 0) + 1
            results.append({"id": stored["Id"], "success": True, "errors": [], "created": created})
        return 200, results, {}

    def _delete(self, query: dict):
        ids = [i for i in ",".join(query.get("ids", [])).split(",") if i]
        if not ids:
            return 400, [{"message": "ids is required", "errorCode": "MALFORMED_QUERY"}], {}
        if len(ids) > 200:
            return (
                400,
                [{"message": "Maximum of 200 ids allowed", "errorCode": "EXCEEDED_ID_LIMIT"}],
                {},
            )
        results = []
        with self.lock:
            for record_id in ids:
                key = next((k for k, v in self.records.items() if v["Id"] == record_id), None)
                if key is None:
                    results.append(
                        {
                            "id": record_id,
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "ENTITY_IS_DELETED",
                                    "message": "entity is deleted",
                                    "fields": [],
                                }
                            ],
                        }
                    )
                    continue
                del self.records[key]
                results.append({"id": record_id, "success": True, "errors": []})
        return 200, results, {}

    def held(self) -> dict[str, dict]:
        return {
            str(key).lower(): {k: v for k, v in stored.items() if k != "Id"}
            for (_, key), stored in self.records.items()
        }
