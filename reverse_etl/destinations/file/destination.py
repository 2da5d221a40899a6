"""File export: each run's upserts as one CSV or Parquet file (settings.format) in
settings.directory, named after the sync and the time; written atomically (temp file + rename).
Erasure rewrites every earlier export of the object without the erased people."""

import datetime as dt
import os
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from cdp.core.sql import quote
from reverse_etl.destinations import Destination, DestinationSettings, Options, Outcome, Record


class FileOptions(Options):
    directory: str | None = None  # else CDP_EXPORT_DIR, else ./exports
    format: Literal["csv", "parquet"] = "csv"


class FileExport(Destination):
    name = "file"
    batch_size = 100_000
    options_model = FileOptions
    url_env = "CDP_EXPORT_DIR"

    @classmethod
    def settings_from_env(cls, options: dict) -> DestinationSettings:
        typed = FileOptions.model_validate(options)
        directory = typed.directory or os.environ.get(cls.url_env, "exports")
        return DestinationSettings(base_url=str(directory), options=typed)

    def upsert(self, records: list[Record]) -> list[Outcome]:
        if not records:
            return []
        fmt = self.settings.options.format
        folder = Path(self.settings.base_url)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{self.object_name}_{stamp}.{fmt}"
        frame = pd.DataFrame([{self.id_field: r.identifier, **r.fields} for r in records])
        con = duckdb.connect()
        try:
            con.register("export_rows", frame)
            _write_atomically(con, "select * from export_rows", target)
        finally:
            con.close()
        return [Outcome(r.record_key, True, str(target.name)) for r in records]

    def erase(self, records: list[Record]) -> list[Outcome]:
        folder = Path(self.settings.base_url)
        column = quote(self.id_field)
        con = duckdb.connect()
        try:
            con.register("erased_ids", pd.DataFrame({"id": [r.identifier for r in records]}))
            for path in sorted(folder.glob(f"{self.object_name}_*")):
                if path.suffix == ".parquet":
                    reader = f"read_parquet('{path}')"
                elif path.suffix == ".csv":
                    reader = f"read_csv('{path}', all_varchar = true)"
                else:
                    continue
                matches = f"cast({column} as varchar) in (select id from erased_ids)"
                held = con.execute(f"select count(*) from {reader} where {matches}").fetchall()
                if held[0][0]:
                    # Read whole before the file is replaced.
                    kept = con.execute(f"select * from {reader} where not ({matches})").df()
                    con.register("kept_rows", kept)
                    _write_atomically(con, "select * from kept_rows", path)
                    con.unregister("kept_rows")
        finally:
            con.close()
        return [Outcome(r.record_key, True, r.destination_id) for r in records]


def _write_atomically(con, query: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    options = "(format csv, header true)" if target.suffix == ".csv" else "(format parquet)"
    con.execute(f"copy ({query}) to '{partial}' {options}")
    partial.replace(target)
