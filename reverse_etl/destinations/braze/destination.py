"""Braze /users/track: user attributes by external_id, at most 75 per request; non-fatal errors
name the index of the rejected object; `_update_existing_only` updates without creating (mode
update); /users/merge folds a merged-away profile's user into the survivor's (at most 50 a
request); /users/delete removes users (mirror mode)."""

from cdp.core.http import RequestRejected
from reverse_etl.destinations import HttpDestination, Outcome, Record


class BrazeUsers(HttpDestination):
    name = "braze"
    batch_size = 75
    max_batch_size = 75
    rate_limit = (3000, 3.0)
    supports_delete = True
    supports_update_existing = True
    merge_batch = 50
    token_env = "BRAZE_API_KEY"
    url_env = "BRAZE_REST_ENDPOINT"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return self._track(records, update_existing_only=False)

    def update_existing(self, records: list[Record]) -> list[Outcome]:
        # Braze does not say which users it did not hold: each counts as confirmed.
        return self._track(records, update_existing_only=True)

    def _track(self, records: list[Record], update_existing_only: bool) -> list[Outcome]:
        only = {"_update_existing_only": True} if update_existing_only else {}
        body = {"attributes": [{"external_id": r.identifier, **r.fields, **only} for r in records]}
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

    def merge(self, pairs: list[tuple[Record, Record]]) -> list[Outcome]:
        outcomes = []
        for start in range(0, len(pairs), self.merge_batch):
            chunk = pairs[start : start + self.merge_batch]
            body = {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"external_id": loser.identifier},
                        "identifier_to_keep": {"external_id": winner.identifier},
                    }
                    for loser, winner in chunk
                ]
            }
            try:
                self.transport.request_json("POST", "/users/merge", json=body)
            except RequestRejected as exc:
                outcomes += [Outcome(lo.record_key, False, message=exc.message) for lo, _ in chunk]
                continue
            outcomes += [Outcome(lo.record_key, True, w.identifier) for lo, w in chunk]
        return outcomes

    def delete(self, records: list[Record]) -> list[Outcome]:
        body = {"external_ids": [r.identifier for r in records]}
        try:
            self.transport.request("POST", "/users/delete", json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        return [Outcome(r.record_key, True, r.identifier) for r in records]
