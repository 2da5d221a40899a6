"""Braze /users/track: user attributes by external_id, at most 75 per request; non-fatal errors
name the index of the rejected object; /users/delete removes users (mirror mode)."""

from reverse_etl.delivery import RequestRejected
from reverse_etl.destinations import Destination, Outcome, Record, register
from reverse_etl.destinations._http import transport_for


@register
class BrazeUsers(Destination):
    name = "braze"
    batch_size = 75
    max_batch_size = 75
    rate_limit = (3000, 3.0)
    supports_delete = True
    token_env = "BRAZE_API_KEY"
    url_env = "BRAZE_REST_ENDPOINT"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transport = transport_for(self, {"Authorization": f"Bearer {self.settings.token}"})

    def upsert(self, records: list[Record]) -> list[Outcome]:
        body = {"attributes": [{"external_id": r.identifier, **r.fields} for r in records]}
        try:
            payload = self.transport.request_json("POST", "/users/track", json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        rejected = {
            e.get("index"): e.get("type", "rejected")
            for e in payload.get("errors", [])
            if e.get("input_array") == "attributes"
        }
        return [
            Outcome(r.record_key, False, message=rejected[i])
            if i in rejected
            else Outcome(r.record_key, True, r.identifier)
            for i, r in enumerate(records)
        ]

    def delete(self, records: list[Record]) -> list[Outcome]:
        body = {"external_ids": [r.identifier for r in records]}
        try:
            self.transport.request("POST", "/users/delete", json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        return [Outcome(r.record_key, True, r.identifier) for r in records]
