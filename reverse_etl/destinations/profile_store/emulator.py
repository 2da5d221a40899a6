"""An embedded profile store in a temporary folder: the profile_store destination's stand-in for
the contract suite (the same store the API serves from without Redis)."""

from typing import ClassVar

from cdp.core.emulator import TemporaryFolderTarget
from cdp.realtime.store import open_store


class TemporaryProfileStore(TemporaryFolderTarget):
    example_sync: ClassVar[dict] = {
        "object": "profiles",
        "identifier": {"source": "profile_id", "destination": "profile_id"},
        "fields": {"first_name": "first_name", "last_name": "last_name"},
    }

    @property
    def url(self) -> str:
        return str(self.folder / "profiles.sqlite")

    def held(self) -> dict[str, dict]:
        store = open_store(self.url)
        try:
            documents = {pid: store.get(pid) for pid in store.profile_ids()}
        finally:
            store.close()
        skip = {"profile_id", "synced_at"}
        return {
            pid.lower(): {k: v for k, v in doc.items() if k not in skip}
            for pid, doc in documents.items()
            if doc is not None
        }
