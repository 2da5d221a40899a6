"""File export: each run's upserts as one CSV or Parquet file (settings.format) in
settings.directory, named after the sync and the time; written atomically (temp file + rename)."""

import datetime as dt
import os
from pathlib import Path

import duckdb
import pandas as pd

from reverse_etl.destinations import Destination, DestinationSettings, Outcome, Record, register


@register
class FileExport(Destination):
    name = "file"
    batch_size = 100_000
    rate_limit = (1_000_000, 1.0)

    @classmethod
    def settings_from_env(cls, options: dict) -> DestinationSettings:
        directory = options.get("directory") or os.environ.get("CDP_EXPORT_DIR", "exports")
        return DestinationSettings(base_url=str(directory), options=options)

    def upsert(self, records: list[Record]) -> list[Outcome]:
        if not records:
            return []
        fmt = str(self.settings.options.get("format", "csv"))
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"file: format must be csv or parquet, not {fmt!r}")
        folder = Path(self.settings.base_url)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{self.object_name}_{stamp}.{fmt}"
        frame = pd.DataFrame([{self.id_field: r.identifier, **r.fields} for r in records])
        partial = target.with_suffix(f".{fmt}.partial")
        con = duckdb.connect()
        try:
            con.register("export_rows", frame)
            options = "(format csv, header true)" if fmt == "csv" else "(format parquet)"
            con.execute(f"copy export_rows to '{partial}' {options}")
        finally:
            con.close()
        partial.rename(target)
        return [Outcome(r.record_key, True, str(target.name)) for r in records]
