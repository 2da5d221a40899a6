"""HubSpot CRM v3 contacts: batch upsert by a unique property (email), 100 inputs per call,
207 Multi-Status when some inputs fail; 100 requests per rolling 10 s (Free/Starter). Mirror mode
archives (restorable for 90 days); erasure uses the GDPR delete, one contact per call, which
removes the contact for good."""

from reverse_etl.delivery import RequestRejected
from reverse_etl.destinations import Destination, Outcome, Record, register
from reverse_etl.destinations._http import transport_for


@register
class HubSpotContacts(Destination):
    name = "hubspot"
    batch_size = 100
    max_batch_size = 100
    rate_limit = (100, 10.0)
    supports_delete = True
    token_env = "HUBSPOT_TOKEN"
    url_env = "HUBSPOT_BASE_URL"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transport = transport_for(self, {"Authorization": f"Bearer {self.settings.token}"})

    def upsert(self, records: list[Record]) -> list[Outcome]:
        body = {
            "inputs": [
                {
                    "id": r.identifier,
                    "idProperty": self.id_field,
                    "properties": {**r.fields, self.id_field: r.identifier},
                }
                for r in records
            ]
        }
        path = f"/crm/v3/objects/{self.object_name}/batch/upsert"
        try:
            payload = self.transport.request_json("POST", path, json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        by_identifier = {r.identifier.lower(): r for r in records}
        outcomes: dict[str, Outcome] = {}
        for result in payload.get("results", []):
            value = str(result.get("properties", {}).get(self.id_field, "")).lower()
            if value in by_identifier:
                record = by_identifier[value]
                outcomes[record.record_key] = Outcome(record.record_key, True, str(result["id"]))
        for error in payload.get("errors", []):
            for value in error.get("context", {}).get("ids", []):
                record = by_identifier.get(str(value).lower())
                if record:
                    outcomes[record.record_key] = Outcome(
                        record.record_key,
                        False,
                        message=f"{error.get('category', 'ERROR')}: {error.get('message', '')}",
                    )
        # An input the answer does not mention was not confirmed: never count it as sent.
        return [
            outcomes.get(r.record_key)
            or Outcome(r.record_key, False, message="not confirmed in the response")
            for r in records
        ]

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
