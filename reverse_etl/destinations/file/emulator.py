"""A folder to export into, read back: the file destination's stand-in for the contract suite."""

from pathlib import Path
from typing import ClassVar

import duckdb

from cdp.core.emulator import TemporaryFolderTarget


class ExportFolder(TemporaryFolderTarget):
    example_sync: ClassVar[dict] = {
        "object": "customers",
        "identifier": {"source": "profile_id", "destination": "profile_id"},
        "fields": {"first_name": "first_name", "last_name": "last_name"},
        "settings": {"format": "parquet"},
    }

    @property
    def url(self) -> str:
        return str(self.folder)

    def held(self) -> dict[str, dict]:
        """Every record of the exports, the newest file's version of each."""
        held: dict[str, dict] = {}
        identifier = self.example_sync["identifier"]["destination"]
        for path in sorted(Path(self.url).glob("*.parquet")):
            for row in duckdb.sql(f"select * from read_parquet('{path}')").df().to_dict("records"):
                key = str(row.pop(identifier)).lower()
                held[key] = row
        return held
