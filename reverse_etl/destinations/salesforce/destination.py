"""Salesforce sObject Collections upsert by external id: PATCH
/services/data/vXX.X/composite/sobjects/{Object}/{ExternalIdField}, at most 200 records of one
type, allOrNone false; one result per record, in input order. Delete: DELETE
/services/data/vXX.X/composite/sobjects?ids=...&allOrNone=false, at most 200 ids, one
DeleteResult per id in the order given."""

from cdp.core.http import RequestRejected
from reverse_etl.destinations import HttpDestination, Outcome, Record

API_VERSION = "v60.0"


class SalesforceObjects(HttpDestination):
    name = "salesforce"
    batch_size = 200
    max_batch_size = 200
    rate_limit = (25, 1.0)
    supports_delete = True
    token_env = "SALESFORCE_TOKEN"
    url_env = "SALESFORCE_INSTANCE_URL"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": self.object_name}, self.id_field: r.identifier, **r.fields}
                for r in records
            ],
        }
        path = f"/services/data/{API_VERSION}/composite/sobjects/{self.object_name}/{self.id_field}"
        try:
            results = self.transport.request_json("PATCH", path, list, json=body)
        except RequestRejected as exc:
            return [Outcome(r.record_key, False, message=exc.message) for r in records]
        if len(results) != len(records):
            return [
                Outcome(r.record_key, False, message="result count differs from records sent")
                for r in records
            ]
        outcomes = []
        for record, result in zip(records, results, strict=True):
            if result.get("success"):
                outcomes.append(Outcome(record.record_key, True, result.get("id")))
            else:
                errors = "; ".join(
                    f"{e.get('statusCode')}: {e.get('message')}" for e in result.get("errors", [])
                )
                outcomes.append(Outcome(record.record_key, False, message=errors))
        return outcomes

    def delete(self, records: list[Record]) -> list[Outcome]:
        known = [r for r in records if r.destination_id]
        # Never confirmed by Salesforce: nothing of it is there to delete.
        outcomes = [Outcome(r.record_key, True) for r in records if not r.destination_id]
        if not known:
            return outcomes
        ids = ",".join(r.destination_id for r in known)
        path = f"/services/data/{API_VERSION}/composite/sobjects?ids={ids}&allOrNone=false"
        try:
            results = self.transport.request_json("DELETE", path, list)
        except RequestRejected as exc:
            return outcomes + [Outcome(r.record_key, False, message=exc.message) for r in known]
        by_id = {str(result.get("id")): result for result in results}
        for r in known:
            result = by_id.get(r.destination_id, {})
            errors = result.get("errors") or []
            gone = result.get("success") or any(
                e.get("statusCode") == "ENTITY_IS_DELETED" for e in errors
            )
            message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
            outcomes.append(Outcome(r.record_key, bool(gone), r.destination_id, message))
        return outcomes
