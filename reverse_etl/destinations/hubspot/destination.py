"""HubSpot CRM v3 contacts: batch upsert by a unique property (email), 100 inputs per call,
207 Multi-Status when some inputs fail; 100 requests per rolling 10 s (Free/Starter). Mirror mode
archives (restorable for 90 days); erasure uses the GDPR delete, one contact per call, which
removes the contact for good."""

from cdp.core.http import RequestRejected
from reverse_etl.destinations import HttpDestination, Outcome, Record


class HubSpotContacts(HttpDestination):
    name = "hubspot"
    batch_size = 100
    max_batch_size = 100
    rate_limit = (100, 10.0)
    supports_delete = True
    supports_update_existing = True
    token_env = "HUBSPOT_TOKEN"
    url_env = "HUBSPOT_BASE_URL"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        """Contacts HubSpot has confirmed before are updated by their object id, so a changed
        email updates the same contact; the others are upserted by email. A contact deleted in
        HubSpot meanwhile is upserted again by email."""
        known = [r for r in records if r.destination_id]
        outcomes = self._update(known, by_id=True) if known else {}
        gone = [r for r in known if outcomes[r.record_key].message.startswith("OBJECT_NOT_FOUND")]
        fresh = [r for r in records if not r.destination_id] + gone
        if fresh:
            outcomes |= self._upsert_by_identifier(fresh)
        return [outcomes[r.record_key] for r in records]

    def update_existing(self, records: list[Record]) -> list[Outcome]:
        """Update mode: contacts matched by email, whoever created them; none is created."""
        outcomes = self._update(records, by_id=False)
        for outcome in outcomes.values():
            if outcome.message.startswith("OBJECT_NOT_FOUND"):
                outcome.absent = True
        return [outcomes[r.record_key] for r in records]

    def _properties(self, record: Record):
        return record.fields_json_with(self.id_field, record.identifier)

    def _update(self, records: list[Record], by_id: bool) -> dict[str, Outcome]:
        def key(r: Record) -> str:
            return str(r.destination_id) if by_id else r.identifier

        body = {
            "inputs": [
                {"id": key(r), "properties": self._properties(r)}
                | ({} if by_id else {"idProperty": self.id_field})
                for r in records
            ]
        }
        path = f"/crm/v3/objects/{self.object_name}/batch/update"
        return self._outcomes(records, path, body, key if by_id else None)

    def _upsert_by_identifier(self, records: list[Record]) -> dict[str, Outcome]:
        body = {
            "inputs": [
                {"id": r.identifier, "idProperty": self.id_field, "properties": self._properties(r)}
                for r in records
            ]
        }
        path = f"/crm/v3/objects/{self.object_name}/batch/upsert"
        return self._outcomes(records, path, body, None)

    def _outcomes(self, records, path, body, key_of) -> dict[str, Outcome]:
        """Send one batch call; an Outcome per record from the results (matched by object id
        when `key_of` gives it, else by the identifier property) and the per-input errors."""
        try:
            payload = self.transport.request_json("POST", path, json=body)
        except RequestRejected as exc:
            return {
                r.record_key: Outcome(r.record_key, False, message=exc.message) for r in records
            }
        if key_of is not None:
            by_key = {key_of(r).lower(): r for r in records}
        else:
            by_key = {r.identifier.lower(): r for r in records}
        outcomes: dict[str, Outcome] = {}
        for result in payload.get("results", []):
            value = result.get("id") if key_of else result.get("properties", {}).get(self.id_field)
            record = by_key.get(str(value or "").lower())
            if record:
                outcomes[record.record_key] = Outcome(record.record_key, True, str(result["id"]))
        for error in payload.get("errors", []):
            for value in error.get("context", {}).get("ids", []):
                record = by_key.get(str(value).lower())
                if record:
                    outcomes[record.record_key] = Outcome(
                        record.record_key,
                        False,
                        message=f"{error.get('category', 'ERROR')}: {error.get('message', '')}",
                    )
        # An input the answer does not mention was not confirmed: never count it as sent.
        return {
            r.record_key: outcomes.get(r.record_key)
            or Outcome(r.record_key, False, message="not confirmed in the response")
            for r in records
        }

    def merge(self, pairs: list[tuple[Record, Record]]) -> list[Outcome]:
        """Merge each merged-away profile's contact into the surviving profile's (HubSpot's merge
        API, one pair a call); where the survivor has no contact, archive the other."""
        outcomes = []
        for loser, winner in pairs:
            if not loser.destination_id:
                outcomes.append(Outcome(loser.record_key, True))
                continue
            if not winner.destination_id:
                outcomes += self.delete([loser])
                continue
            body = {
                "primaryObjectId": winner.destination_id,
                "objectIdToMerge": loser.destination_id,
            }
            try:
                self.transport.request_json(
                    "POST", f"/crm/v3/objects/{self.object_name}/merge", json=body
                )
            except RequestRejected as exc:
                # 404: merged or deleted in HubSpot already: nothing left to merge
                outcomes.append(Outcome(loser.record_key, exc.status == 404, message=exc.message))
                continue
            outcomes.append(Outcome(loser.record_key, True, winner.destination_id))
        return outcomes

    def delete(self, records: list[Record]) -> list[Outcome]:
        body = {"inputs": [{"id": r.destination_id} for r in records if r.destination_id]}
        path = f"/crm/v3/objects/{self.object_name}/batch/archive"
        try:
            self.transport.request("POST", path, json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        return [Outcome(r.record_key, True, r.destination_id) for r in records]

    def erase(self, records: list[Record]) -> list[Outcome]:
        outcomes = []
        for r in records:
            # By HubSpot's id where we have it, else by the identifier (email).
            body = (
                {"objectId": r.destination_id}
                if r.destination_id
                else {"objectId": r.identifier, "idProperty": self.id_field}
            )
            try:
                self.transport.request(
                    "POST", f"/crm/v3/objects/{self.object_name}/gdpr-delete", json=body
                )
            except RequestRejected as exc:
                # 404: the contact is not there (deleted in HubSpot already): nothing to erase.
                outcomes.append(Outcome(r.record_key, exc.status == 404, message=str(exc)))
                continue
            outcomes.append(Outcome(r.record_key, True, r.destination_id))
        return outcomes
