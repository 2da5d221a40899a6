"""Webhook receiver emulator: verifies Standard Webhooks signatures and timestamps (5 minutes)
and honours Idempotency-Key (a repeat replays the first answer without applying it again; the
same key with another body is 422). Actions: upsert, delete (mirror) and erase (data-subject
erasure: the receiver forgets the record)."""

import base64
import hashlib
import hmac
import time
from typing import ClassVar

import orjson

from cdp.core.emulator import Emulator


class WebhookEmulator(Emulator):
    example_sync: ClassVar[dict] = {
        "object": "customers",
        "identifier": {"source": "profile_id", "destination": "profile_id"},
        "fields": {"first_name": "first_name", "last_name": "last_name"},
    }

    default_credential: ClassVar[str] = "whsec_test-secret"

    def __init__(self, secret: str = "whsec_test-secret", rate_limit=None):
        super().__init__(token="", rate_limit=rate_limit)
        self.secret = secret
        self.records: dict[str, dict] = {}
        self.applied_per_key: dict[str, int] = {}
        self.deleted: set[str] = set()
        self._seen: dict[str, tuple[str, tuple]] = {}

    def _valid_signature(self, headers: dict, body: bytes) -> bool:
        message_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "0")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        key = self.secret.removeprefix("whsec_").encode()
        expected = base64.b64encode(
            hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        offered = [
            s.split(",", 1)[1]
            for s in headers.get("webhook-signature", "").split()
            if s.startswith("v1,")
        ]
        return any(hmac.compare_digest(expected, sig) for sig in offered)

    def handle(self, method, path, headers, body):
        if method != "POST":
            return 405, {"error": "method not allowed"}, {}
        if not self._valid_signature(headers, body):
            return 401, {"error": "invalid signature or timestamp"}, {}
        key = headers.get("Idempotency-Key")
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            if key in self._seen:
                seen_digest, answer = self._seen[key]
                if seen_digest != digest:
                    return 422, {"error": "Idempotency-Key reused with another payload"}, {}
                return (*answer[:2], {"Idempotent-Replayed": "true"})
            payload = orjson.loads(body)
            kind = payload.get("object", "")
            for item in payload.get("records", []):
                stored = f"{kind}/{item['key']}"  # the receiver keeps one list per object
                if payload.get("action") == "erase":  # forgotten: not even the key stays
                    self.records.pop(stored, None)
                    self.applied_per_key.pop(stored, None)
                    self.deleted.discard(stored)
                elif payload.get("action") in ("delete", "withdraw", "merge"):
                    # this receiver drops them; a real one may unsubscribe or suppress instead
                    self.records.pop(stored, None)
                    self.deleted.add(stored)
                elif payload.get("action") == "update" and stored not in self.records:
                    continue  # update creates nothing
                else:
                    self.records[stored] = {**item, "object": kind}
                    self.applied_per_key[stored] = self.applied_per_key.get(stored, 0) + 1
            answer = (200, {"accepted": len(payload.get("records", []))}, {})
            if key:
                self._seen[key] = (digest, answer)
        return answer

    def held(self) -> dict[str, dict]:
        return {str(item["id"]).lower(): item["fields"] for item in self.records.values()}
