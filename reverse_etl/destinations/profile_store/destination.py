"""The profile store (Redis, or the embedded SQLite file) as a destination: each synced row
becomes the profile's JSON document, which the profile API serves.

A mapped field named `section.name` lands in that section of the document (`traits.revenue_eur`,
`pii.email`); fields whose value is a comma-separated list in the model (`identifiers`,
`audiences`, `consents`) are split into lists. Whatever the sync puts under `pii.` is served
only to tokens allowed personal data. Mirror mode deletes the profiles the model no longer holds
(merged away, erased), with their index entries.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

from cdp.realtime.live import adopt
from cdp.realtime.store import STORE_ENV, open_store
from reverse_etl.destinations import Destination, DestinationSettings, Outcome, Record

LIST_FIELDS = ("identifiers", "audiences", "consents")
LIST_SEPARATOR = ", "  # the distinct_list macro's


def _value(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def document(record: Record) -> dict:
    """A synced row as the profile's document."""
    doc: dict = {"profile_id": record.identifier}
    for name, value in record.fields.items():
        if name in LIST_FIELDS:
            doc[name] = [v for v in (value or "").split(LIST_SEPARATOR) if v]
            continue
        section, _, field = name.rpartition(".")
        target = doc.setdefault(section, {}) if section else doc
        target[field] = _value(value)
    doc["synced_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return doc


class ProfileStoreDestination(Destination):
    name = "profile_store"
    batch_size = 1_000
    supports_delete = True
    url_env = STORE_ENV

    @classmethod
    def settings_from_env(cls, options: dict) -> DestinationSettings:
        """No address is needed: an unset CDP_PROFILE_STORE means the embedded store."""
        typed = cls.options_model.model_validate(options)
        return DestinationSettings(base_url=os.environ.get(STORE_ENV, ""), options=typed)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writes = 0

    @property
    def calls(self) -> int:
        """Writes to the store (one pipeline or transaction per batch)."""
        return self._writes

    def upsert(self, records: list[Record]) -> list[Outcome]:
        store = open_store(self.settings.base_url)
        try:
            documents = [document(r) for r in records]
            store.put(documents)
            adopt(store, documents)
            self._writes += 1
        finally:
            store.close()
        return [Outcome(r.record_key, True, r.identifier) for r in records]

    def delete(self, records: list[Record]) -> list[Outcome]:
        store = open_store(self.settings.base_url)
        try:
            store.delete([r.destination_id or r.identifier or r.record_key for r in records])
            self._writes += 1
        finally:
            store.close()
        return [Outcome(r.record_key, True, r.destination_id) for r in records]
