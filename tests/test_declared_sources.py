"""Bring your own data: FEBRL3 (public, labelled, written by nobody here) declared in one YAML
file and run through the whole Dagster pipeline as `cdp run`, beside a binary file in its
landing folder and a declaration that cannot be used; then human identity decisions on it."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.core.warehouse import DuckDBWarehouse
from cdp.identity.benchmarks import environment, run_pipeline, write_dataset
from cdp.identity.decisions import decide
from cdp.identity.evaluation import evaluate
from cdp.ingest.sources import SourceError, read_source
from tests.conftest import dbt_build

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def febrl3(tmp_path_factory):
    out = tmp_path_factory.mktemp("febrl3")
    write_dataset("febrl3", out)
    people = out / "landing" / "febrl3" / "people"
    (people / "zz_export.csv").write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)) * 40)
    (out / "sources" / "broken.yml").write_text(
        "system: broken\ntables:\n  - name: people\n    entity: person\n    columns:\n"
        "      - {name: id}\n",
        encoding="utf-8",
    )
    # a second system: consent columns of two channels, one value that reads as neither
    (out / "sources" / "newsletter.yml").write_text(
        "system: newsletter\ntables:\n  - name: members\n    entity: person\n    columns:\n"
        "      - {name: member_id, type: id, role: record_id}\n"
        "      - {name: name, role: full_name}\n"
        "      - {name: mail, role: email}\n"
        "      - {name: newsletter, role: consent, consent: {purpose: email_marketing}}\n"
        "      - {name: sms_ok, role: consent, consent: {purpose: email_marketing, channel: sms}}\n"
        "      - {name: signed_up, type: timestamp, role: consent_at}\n",
        encoding="utf-8",
    )
    members = out / "landing" / "newsletter" / "members"
    members.mkdir(parents=True)
    (members / "members.csv").write_text(
        "member_id,name,mail,newsletter,sms_ok,signed_up\n"
        "n1,Anna Berg,anna@example.org,ja,no,2025-05-01 10:00:00\n"
        'n2,"LIND, BO ERIK",bo@example.org,nein,,2025-05-02 10:00:00\n'
        "n3,Cy Ann Moe,cy@example.org,vielleicht,yes,2025-05-03 10:00:00\n",
        encoding="utf-8",
    )
    code = run_pipeline(out)
    return out, code


def _one(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_febrl3_builds_every_record_with_bad_dates_null_and_flagged(febrl3):
    out, code = febrl3
    log = (out / "run.log").read_text(encoding="utf-8")
    assert code == 0, log[-4000:]
    with duckdb.connect(environment(out)["CDP_WAREHOUSE"], read_only=True) as con:
        assert (
            _one(
                con,
                "select count(*) from staging.stg_declared__person_records where source = 'febrl3'",
            )
            == 5000
        )
        # FEBRL3 has 35 impossible birth dates (19160017): null in staging, kept in raw
        flagged = con.execute(
            "select count(*), count(*) filter (where s.birth_date is null), "
            "min(r._invalid_values::json->'date_of_birth'->>'reason') "
            "from raw.febrl3__people as r join staging.stg_declared__person_records as s "
            "on s.source_record_id = r.rec_id where r._invalid_values is not null"
        ).fetchall()[0]
        assert flagged[0] == flagged[1] == 35
        assert "is not a valid date (%Y%m%d)" in flagged[2]
        # the declaration's reformatting keeps the exported text
        assert (
            _one(con, "select _source_values from raw.febrl3__people where rec_id = 'rec-1496-org'")
            == '{"date_of_birth":"19560409"}'
        )
        # the binary file is rejected and recorded; everything else built
        rejected = con.execute(
            "select file_name, reason from raw._load_files where status = 'rejected'"
        ).fetchall()
        assert [(Path(f).name, r.split(" (")[0]) for f, r in rejected] == [
            ("zz_export.csv", "binary content")
        ]
        profiles = _one(con, "select count(distinct profile_id) from marts.customers")
        assert 1900 <= profiles <= 2200
    assert "broken.yml" in log and "left out" in log
    with duckdb.connect(environment(out)["CDP_WAREHOUSE"], read_only=True) as con:
        score = evaluate(con, environment(out)["CDP_LANDING"])
    assert score.records_scored == 5000 and score.records_lost == 0
    assert score.f1 >= 0.98, score.figures()


def test_declared_consent_columns_become_consent_statements(febrl3):
    out, code = febrl3
    assert code == 0
    with duckdb.connect(environment(out)["CDP_WAREHOUSE"], read_only=True) as con:
        consents = con.execute(
            "select r.source_record_id, c.purpose, c.channel, c.is_granted, c.statement, "
            "cast(c.stated_at as varchar) from marts.customer_consents as c "
            "join marts.customer_profile_records as r using (profile_id) "
            "where r.source = 'newsletter' order by 1, 3"
        ).fetchall()
    assert consents == [
        ("n1", "email_marketing", "email", True, "members.newsletter", "2025-05-01 10:00:00"),
        ("n1", "email_marketing", "sms", False, "members.sms_ok", "2025-05-01 10:00:00"),
        ("n2", "email_marketing", "email", False, "members.newsletter", "2025-05-02 10:00:00"),
        ("n3", "email_marketing", "sms", True, "members.sms_ok", "2025-05-03 10:00:00"),
    ]


def test_a_full_name_splits_in_either_order(febrl3):
    """A full name as "Given Middle Family" or as "Family, Given Middle": the first given name is
    the one another system keeps, so middle names stay out of it."""
    out, code = febrl3
    assert code == 0
    with duckdb.connect(environment(out)["CDP_WAREHOUSE"], read_only=True) as con:
        names = con.execute(
            "select source_record_id, first_name, middle_name, last_name "
            "from staging.stg_declared__person_records where source = 'newsletter' order by 1"
        ).fetchall()
    assert names == [
        ("n1", "Anna", None, "Berg"),
        ("n2", "Bo", "Erik", "Lind"),
        ("n3", "Cy", "Ann", "Moe"),
    ]


def test_a_declaration_error_names_file_line_and_field(tmp_path):
    path = tmp_path / "shop.yml"
    path.write_text(
        "system: shop2\ntables:\n  - name: people\n    entity: person\n    columns:\n"
        "      - {name: id, type: id, role: record_id}\n"
        "      - {name: dob, type: datum, role: birth_date}\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError) as error:
        read_source(path)
    assert f"{path}:7: tables.0.columns.1.type:" in str(error.value)


def test_sources_check_reads_a_sample_as_the_loader_would(febrl3):
    out, _ = febrl3
    done = subprocess.run(
        [str(BIN / "cdp"), "sources", "check", str(out / "sources" / "febrl3.yml")],
        env={**os.environ, **environment(out), "COLUMNS": "200"},
        capture_output=True,
        text=True,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    assert "rows loaded: 5,000" in printed
    assert "date_of_birth: 35 value(s) do not parse" in printed


def _profiles(con, keys: list[str]) -> dict[str, str]:
    rows = con.execute(
        "select record_key, profile_id from marts.customer_profile_records "
        f"where record_key in ({', '.join('?' for _ in keys)})",
        keys,
    ).fetchall()
    return dict(rows)


def test_identity_decisions_are_stored_and_honoured_by_the_next_run(febrl3):
    out, code = febrl3
    assert code == 0
    env = environment(out)
    with duckdb.connect(env["CDP_WAREHOUSE"]) as raw:
        con = DuckDBWarehouse(raw)
        # a person whose two records are one profile, linked by their one match
        pair = con.execute("""
            select min(record_key), max(record_key) from marts.customer_profile_records
            group by profile_id having count(*) = 2 order by 1 limit 1""").fetchall()[0]
        trio = con.execute("""
            select min(record_key) from marts.customer_profile_records
            group by profile_id having count(*) >= 3 order by 1 limit 1""").fetchall()[0][0]
        strangers = con.execute("""
            select min(record_key) from marts.customer_profile_records
            group by profile_id order by 1 limit 2""").fetchall()
        strangers = [strangers[0][0], strangers[1][0]]
        before = _profiles(con, [*pair, trio, *strangers])
        assert before[pair[0]] == before[pair[1]] and before[strangers[0]] != before[strangers[1]]
        decide(con, "keep_apart", *pair, reason="two people", decided_by="test")
        decide(con, "detach", trio, reason="wrong profile", decided_by="test")
        decide(con, "merge", *strangers, reason="same person", decided_by="test")
    dbt_build(
        "-s", "stg_identity__decisions+", "--exclude-resource-type", "unit_test", env=env
    )  # fmt: skip
    with duckdb.connect(env["CDP_WAREHOUSE"], read_only=True) as con:
        after = _profiles(con, [*pair, trio, *strangers])
        assert after[pair[0]] != after[pair[1]]
        assert (
            _one(
                con,
                f"select count(*) from marts.customer_profile_records where profile_id = "
                f"'{after[trio]}'",
            )
            == 1
        )
        assert after[strangers[0]] == after[strangers[1]]
        cause = _one(
            con,
            "select cause from marts.identity_merges where event_type = 'merge' "
            "and cause like 'manual merge%'",
        )
        assert cause.startswith("manual merge (decision ")
        who = con.execute("select distinct decided_by, reason from raw.identity_decisions")
        assert ("test", "same person") in who.fetchall()
