"""Generic webhook: JSON batches signed the Standard Webhooks way (webhook-id, webhook-timestamp,
webhook-signature = v1,base64(HMAC-SHA256(secret, "id.timestamp.body"))) with an Idempotency-Key,
so a batch re-sent after a crash is recognised by the receiver."""

import base64
import hashlib
import hmac
import json
import os
import time

from cdp.core.http import RequestRejected
from reverse_etl.destinations import HttpDestination, HttpOptions, Outcome, Record


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = secret.removeprefix("whsec_").encode()
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookOptions(HttpOptions):
    # The environment variable holding the signing secret (a receiver of its own, its own secret).
    secret_env: str = "WEBHOOK_SECRET"


class Webhook(HttpDestination):
    name = "webhook"
    batch_size = 500
    rate_limit = (50, 1.0)
    options_model = WebhookOptions
    supports_delete = True
    supports_update_existing = True
    url_env = "WEBHOOK_URL"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        secret_env = self.settings.options.secret_env
        self.secret = os.environ.get(secret_env, "")
        if not self.secret:
            raise ValueError(f"webhook: the environment variable {secret_env} is not set")

    @classmethod
    def credential_env(cls) -> str:
        return WebhookOptions().secret_env

    def headers(self) -> dict[str, str]:
        # No bearer token: every request is signed (below)
        return {"Content-Type": "application/json"}

    def _post(self, action: str, records: list[Record]) -> list[Outcome]:
        items = [{"key": r.record_key, "id": r.identifier, "fields": r.fields} for r in records]
        body = json.dumps(
            {"object": self.object_name, "action": action, "records": items},
            sort_keys=True,
            default=str,
        ).encode()
        message_id = "msg_" + hashlib.sha256(body).hexdigest()[:32]
        timestamp = int(time.time())
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.secret, message_id, timestamp, body),
            "Idempotency-Key": message_id,
        }
        try:
            self.transport.request("POST", "", data=body, headers=headers)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        return [Outcome(r.record_key, True, r.identifier) for r in records]

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return self._post("upsert", records)

    def delete(self, records: list[Record]) -> list[Outcome]:
        return self._post("delete", records)

    def update_existing(self, records: list[Record]) -> list[Outcome]:
        # The receiver updates what it holds and creates nothing.
        return self._post("update", records)

    def merge(self, pairs: list[tuple[Record, Record]]) -> list[Outcome]:
        merged = [
            Record(
                loser.record_key,
                loser.identifier,
                {"merged_into": winner.record_key, "merged_into_id": winner.identifier},
                loser.destination_id,
            )
            for loser, winner in pairs
        ]
        return self._post("merge", merged)

    def withdraw(self, records: list[Record]) -> list[Outcome]:
        # The receiver decides how to stop (unsubscribe, suppress, delete); it is told why.
        return self._post("withdraw", records)

    def erase(self, records: list[Record]) -> list[Outcome]:
        # Its own action, so the receiver can tell a data-subject erasure from a mirror delete.
        return self._post("erase", records)
