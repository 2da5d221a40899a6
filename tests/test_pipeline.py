"""The Dagster code location and a real run of its full graph on DuckDB: raw -> dbt staging."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from dagster import AssetCheckKey, AssetKey, AssetSelection, materialize

from cdp.ingest.declared import DECLARED_RELATIONS
from cdp.ingest.sources import tables
from orchestration.project import PROJECT_ROOT, DbtCli
from tests.conftest import DBT_TARGET

DBT = str(Path(sys.executable).parent / "dbt")


def test_definitions_group_assets_by_layer_and_join_lineage(defs):
    graph = defs.resolve_asset_graph()
    groups = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key)
    # raw: one asset per source table, plus the relations declared (YAML) sources publish
    assert groups["raw"] == {AssetKey([t.source, t.name]) for t in tables()} | {
        AssetKey(["declared", n]) for n in DECLARED_RELATIONS
    }
    # staging: one model per source table, plus the caches Python assets write, the declared
    # sources' models and the identity and lead decisions
    assert {k.path[-1] for k in groups["staging"]} == {
        f"stg_{t.source}__{t.name}" for t in tables()
    } | {
        "stg_enrichment__companies",
        "stg_ml__customer_predictions",
        "stg_declared__person_records",
        "stg_declared__person_identifiers",
        "stg_declared__identifier_kinds",
        "stg_declared__consent_statements",
        "stg_identity__decisions",
        "stg_lead_workflow__decisions",
    }
    assert groups["reference"] == {
        AssetKey(["reference", seed])
        for seed in (
            "nicknames",
            "identity_identifier_rules",
            "identity_blocklist",
            "currency_rates",
            "free_email_domains",
            "sales_territories",
            "sales_reps",
        )
    }
    assert {"intermediate", "marts", "snapshots"} <= set(groups)
    upstream = AssetSelection.assets(AssetKey(["marts", "customers"])).upstream().resolve(graph)
    assert {AssetKey(["crm", "contacts"]), AssetKey(["intermediate", "int_identity_matches"])} <= (
        upstream
    )
    for t in tables():
        staging = AssetKey(["staging", f"stg_{t.source}__{t.name}"])
        assert AssetKey([t.source, t.name]) in graph.get(staging).parent_keys
    assert defs.resolve_schedule_def("daily_full_graph").cron_schedule == "0 3 * * *"
    assert defs.resolve_sensor_def("landing_folder_sensor").job_name == "load_landed_files"


def test_dbt_tests_and_great_expectations_run_as_asset_checks(defs):
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("crm/contacts", "ge_match_regex_email") in checks
    assert ("support/tickets", "ge_in_set_priority") in checks
    assert ("staging/stg_crm__contacts", "primary_key_stg_crm__contacts_contact_id") in checks
    assert len(checks) > 100


def test_full_graph_run_succeeds_with_no_failing_error_check(full_run):
    assert full_run.success
    evaluations = full_run.get_asset_check_evaluations()
    failed = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in evaluations
        if not e.passed and e.severity.value == "ERROR"
    ]
    assert len(evaluations) > 100
    assert failed == []


def test_dbt_runs_in_one_command_before_the_predictions_and_one_after(full_run):
    """Raw loads and enrichment do not cut the dbt build; the predictions, which read dbt
    models and feed others, do. Every dbt test planned is evaluated, source tests included."""
    by_step: dict[str, set] = {}
    for event in full_run.get_asset_materialization_events():
        by_step.setdefault(event.step_key, set()).add(event.asset_key.path[-1])
    dbt_steps = sorted(step for step in by_step if step.startswith("cdp_dbt_models"))
    assert dbt_steps == ["cdp_dbt_models", "cdp_dbt_models_2"]
    first, after_predictions = by_step["cdp_dbt_models"], by_step["cdp_dbt_models_2"]
    # seeds, models of CLI-written sources, raw-fed and enrichment-fed models: one command
    assert {"nicknames", "stg_lead_workflow__decisions", "customers", "lead_scores"} <= first
    assert {"stg_ml__customer_predictions", "customer_next_best_actions"} <= after_predictions
    evaluated = {
        AssetCheckKey(e.asset_key, e.check_name) for e in full_run.get_asset_check_evaluations()
    }
    for step in full_run.job_def.asset_layer.asset_graph.assets_defs:
        if step.is_executable and step.node_def.name.startswith("cdp_dbt_models"):
            assert set(step.check_keys) <= evaluated, step.node_def.name
    assert AssetCheckKey(
        AssetKey(["crm", "contacts"]), "source_not_null_crm_contacts_contact_id"
    ) in (evaluated)


def test_dbt_steps_parse_nothing_the_run_prepared(full_run):
    """The manifest is prepared once per process; each dbt command of the run finds nothing
    to parse again (dagster-dbt's preparation voided the seeds' entries: 1.2 s a command)."""
    steps = sorted(DBT_TARGET.glob(f"cdp_dbt_models*-{full_run.run_id[:7]}-*"))
    assert len(steps) == 2
    for step in steps:
        log = "".join(path.read_text() for path in step.glob("dbt.log*"))  # rotated at 10 MB
        assert "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed." in log
        assert "Partial parsing: updated file" not in log and "Starting full parse" not in log


def test_the_dbt_version_given_to_dagster_dbt_is_the_executables():
    """DbtCli answers dagster-dbt's version question from the installed package instead of
    starting `dbt --version` before every command: they must agree."""
    shown = subprocess.run([DBT, "--version"], capture_output=True, text=True, check=True)
    version = DbtCli(project_dir=str(PROJECT_ROOT), dbt_executable=DBT)._cli_version
    assert f"installed: {version}" in shown.stdout


def test_raw_assets_report_rows_read_new_and_quarantined(full_run):
    for t in tables():
        [event] = [
            m
            for m in full_run.get_asset_materialization_events()
            if m.asset_key == AssetKey([t.source, t.name])
        ]
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        assert meta["rows_new"] > 0, t.key
        assert (
            meta["rows_read"]
            == meta["rows_new"]
            + meta["rows_already_loaded"]
            + meta["rows_quarantined"]
            + meta["rows_suppressed"]
        )
        assert meta["files_loaded"] == 1


def test_quarantine_holds_the_broken_rows_with_reasons(warehouse):
    rows = warehouse.execute(
        "select source, count(*), count(distinct reason) from raw.quarantine group by 1"
    ).fetchall()
    assert {r[0] for r in rows} >= {"shop", "web", "email"}
    assert sum(r[1] for r in rows) > 10


def test_staging_removes_exact_duplicates_and_keeps_latest_versions(warehouse):
    raw_events, distinct_events, staged = warehouse.execute(
        "select (select count(*) from raw.web__events),"
        " (select count(distinct event_id) from raw.web__events),"
        " (select count(*) from staging.stg_web__events)"
    ).fetchall()[0]
    assert raw_events > distinct_events == staged
    versions = warehouse.execute(
        "select r.contact_id, max(r.updated_at), any_value(s.updated_at)"
        " from raw.crm__contacts r join staging.stg_crm__contacts s using (contact_id)"
        " group by 1 having count(distinct r.updated_at) > 1"
    ).fetchall()
    assert versions
    berlin = ZoneInfo("Europe/Berlin")
    for _, newest_local, staged_utc in versions:
        local = dt.datetime.fromisoformat(newest_local).replace(tzinfo=berlin)
        assert local.astimezone(dt.UTC).replace(tzinfo=None) == staged_utc


def test_timestamps_become_utc_across_daylight_saving(warehouse):
    rows = warehouse.execute(
        "select r.created_at, s.created_at from raw.support__tickets r"
        " join staging.stg_support__tickets s using (ticket_id) limit 500"
    ).fetchall()
    berlin = ZoneInfo("Europe/Berlin")
    offsets = set()
    for local_text, utc in rows:
        local = dt.datetime.strptime(local_text, "%d.%m.%Y %H:%M").replace(tzinfo=berlin)
        offsets.add(local.utcoffset())
        # in the hour repeated when clocks go back either instant is a faithful reading
        readings = {
            local.replace(fold=fold).astimezone(dt.UTC).replace(tzinfo=None) for fold in (0, 1)
        }
        assert utc in readings
    assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}


def test_phone_numbers_agree_with_libphonenumber(warehouse):
    rows = warehouse.execute(
        "select distinct r.phone, s.country_code, s.phone from raw.crm__contacts r"
        " join staging.stg_crm__contacts s using (contact_id) where r.phone is not null"
    ).fetchall()
    compared = agreed = 0
    for raw_phone, country, staged in rows:
        if country is None:  # a spelling no country matches: no region to read national numbers
            continue
        try:
            parsed = phonenumbers.parse(raw_phone, country)
        except phonenumbers.NumberParseException:
            assert staged is None
            continue
        # Valid numbers only: libphonenumber reads "0061 ..." in Australia (whose international
        # prefix is 0011) as a national number that cannot exist; the staging reads it as +61.
        if not phonenumbers.is_valid_number(parsed):
            continue
        compared += 1
        agreed += staged == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    assert compared > 300
    assert agreed / compared >= 0.98, f"{agreed}/{compared}"


def test_emails_countries_and_names_are_normalized(warehouse):
    bad = warehouse.execute(
        "select count(*) from staging.stg_shop__customers"
        " where email <> lower(trim(email)) or not regexp_full_match(country_code, '[A-Z]{2}')"
        " or first_name <> trim(first_name) or first_name = upper(first_name)"
    ).fetchall()[0][0]
    assert bad == 0
    # every country is known, not only the shop's markets (Australien, Türkiye, Sweden, ...)
    foreign = warehouse.execute(
        "select distinct country_code from staging.stg_crm__contacts"
        " where country_code in ('SE', 'AU', 'TR')"
    ).fetchall()
    assert foreign
    umlauts = warehouse.execute(
        "select count(*) from staging.stg_crm__contacts where last_name like '%ü%'"
    ).fetchall()[0][0]
    assert umlauts > 0


def test_source_freshness_passes_after_a_load(full_run):
    done = subprocess.run(
        [DBT, "--no-use-colors", "source", "freshness", "--profiles-dir", "."],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert done.stdout.count("PASS freshness of") == len(tables()), done.stdout[-2000:]


def test_an_unreadable_file_is_rejected_with_a_clear_line_and_the_asset_succeeds(tmp_path):
    from orchestration.ingest.raw import raw_assets
    from orchestration.resources import WarehouseResource

    folder = tmp_path / "landing" / "support" / "tickets"
    folder.mkdir(parents=True)
    (folder / "tickets.csv").write_text("id;subject\nT-1;Hallo\n", encoding="utf-8")
    asset = next(a for a in raw_assets() if a.key == AssetKey(["support", "tickets"]))
    result = materialize(
        [asset],
        resources={
            "warehouse": WarehouseResource(
                path=str(tmp_path / "wh.duckdb"), landing_dir=str(tmp_path / "landing")
            )
        },
        raise_on_error=False,
    )
    # the table keeps its last good data and everything downstream still builds
    assert result.success
    [materialization] = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["files_rejected"].value == 1
    [reason] = metadata["files"].value["rejected"].values()
    assert reason.startswith("missing required column(s) ticket_id")


@pytest.mark.parametrize("command", ["generate", "run", "insights", "audiences"])
def test_cli_commands_have_help(command):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cdp"), command, "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "Usage" in done.stdout


# Commands left out of the walk: they start servers, generate or download data sets, or run
# the whole graph; each has its own tests.
_LONG_RUNNING = {
    "generate",
    "run",
    "sync demo",
    "serve collect",
    "serve api",
    "benchmark run",
    "benchmark import",
    "audiences compile",
    "ui",
}
_ARGUMENTS = {
    "who": "a@b.c",
    "name": "hubspot_contacts",
    "record_a": "crm:1",
    "record_b": "crm:2",
    "record": "crm:1",
}


def _leaf_commands():
    import typer

    from cdp.cli import app

    def walk(command, words):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*words, name])
        elif " ".join(words) not in _LONG_RUNNING:
            yield words, command

    return list(walk(typer.main.get_command(app), []))


def test_every_command_given_bad_paths_and_config_answers_in_one_line_with_exit_2(
    tmp_path, monkeypatch, capsys
):
    """An unusable warehouse path, a missing file, an invalid sync definition: every command
    names itself and the cause in one line and exits 2 (in-process, to walk them all quickly;
    the entry point itself is run below)."""
    from cdp.cli import app

    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    syncs = tmp_path / "syncs"
    syncs.mkdir()
    (syncs / "broken.yml").write_text("name: broken\nsource: [unclosed\n")
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "not-a-folder" / "x.duckdb"))
    monkeypatch.setenv("CDP_SYNCS_DIR", str(syncs))
    monkeypatch.setenv("COLUMNS", "200")
    missing = str(tmp_path / "missing" / "file.yml")
    walked = []
    for words, command in _leaf_commands():
        args = list(words)
        for param in command.params:
            if param.required and param.param_type_name == "argument":
                args.append(_ARGUMENTS.get(param.name, missing))
            elif param.required:
                args += [param.opts[0], str(tmp_path / "not-a-folder" / "out")]
        monkeypatch.setattr(sys, "argv", ["cdp", *args])
        try:
            app(args=args, prog_name="cdp")
            code = 0
        except SystemExit as stop:
            code = stop.code
        output = capsys.readouterr()
        text = (output.out + output.err).strip()
        walked.append(" ".join(words))
        if code == 0:  # a command that needs neither the warehouse nor a file
            assert "Traceback" not in text, (words, text)
            continue
        assert code == 2, (words, code, text)
        assert "Traceback" not in text and "╭" not in text, (words, text)
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1, (words, text)
    assert len(walked) >= 20, walked


def test_the_cdp_entry_point_fails_in_one_line_not_a_traceback(tmp_path):
    cdp = str(Path(sys.executable).parent / "cdp")
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    done = subprocess.run(
        [cdp, "privacy", "export", "a@b.c"],
        capture_output=True,
        text=True,
        env={**os.environ, "CDP_WAREHOUSE": str(tmp_path / "not-a-folder" / "x.duckdb")},
        timeout=120,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1 and output.startswith("cdp privacy export: ")


def test_importing_the_code_location_and_the_cli_reads_no_source_declaration():
    """Source declarations are read when definitions are built, not when a module is imported:
    a folder of declarations that does not exist yet must not matter to an import."""
    script = (
        "import orchestration.definitions, cdp.cli, cdp.privacy.erasure, cdp.demo.generate\n"
        "from cdp.ingest import sources\n"
        "before = sources.declarations.cache_info().currsize\n"
        "print(before, len(sources.tables()), sources.declarations.cache_info().currsize)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, table_count, after = map(int, done.stdout.split())
    assert (before, after) == (0, 1) and table_count >= 10


def test_every_command_the_docs_show_exists_with_its_options():
    """Each `cdp ...` in README.md and docs/*.md names a real command, and each --option on a
    command line of a code block is one of its options."""
    import re

    import typer

    from cdp.cli import app
    from cdp.core.config import PROJECT_ROOT

    root = typer.main.get_command(app)
    mentioned = 0
    for page in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S))
        inline = re.findall(r"`(cdp [^`]+)`", text)
        code_lines = [line.strip().removeprefix("$ ") for line in blocks.splitlines()]
        for line in [*inline, *(line for line in code_lines if line.startswith("cdp "))]:
            words = line.split()[1:]
            command, parent, path = root, root, ["cdp"]
            while hasattr(command, "commands") and words and not words[0].startswith("-"):
                name = words.pop(0)
                if name == "...":  # "cdp identity ...": the group as a whole
                    break
                assert name in command.commands, f"{page.name}: `{line}`: no command {name!r}"
                parent, command, path = command, command.commands[name], [*path, name]
            # "cdp sync list | validate [--offline] | run NAME": the alternatives' options too
            alternatives = [parent.commands[w] for w in words if w in parent.commands]
            options = {
                opt
                for each in [command, *alternatives]
                for param in each.params
                for opt in param.opts + param.secondary_opts
            }
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line.split("#")[0]):
                assert option in options | {"--help"}, (
                    f"{page.name}: `{line}`: {' '.join(path)} has no option {option}"
                )
            mentioned += 1
    assert mentioned >= 40


def test_the_readme_figures_are_an_excerpt_of_a_demo_log():
    """`make readme` renders the README's demo block from `make demo`'s log, not by hand."""
    from bench.demo_report import END, START, excerpt

    log = "\n".join(
        [
            "noise before",
            "Warehouse /tmp/clone/warehouse/cdp.duckdb",
            "┏━━┓",
            "Checks: 7 passed, 1 warn",
            "Run 1234 succeeded in 9.0 s",
            "Audiences",
            "Churn model: AUC 0.6",
            "      Identity resolution vs. ground truth",
            "│ f1 │ 0.98 │",
            "└────┘",
            "Emulators now hold: hubspot 3",
            "collector: 3 events",
            "hot path: the API showed them 1.2 s",
            "after they were sent, before any batch run",
            "make demo: done in 300 s (without the install)",
        ]
    )
    shown = excerpt(log)
    assert shown[0] == "Warehouse warehouse/cdp.duckdb"  # no machine path
    assert "Audiences" not in shown and "noise before" not in shown
    assert "Churn model: AUC 0.6" in shown  # the centred table title after it is no wrap
    assert shown[-1].startswith("make demo: done in 300 s")
    assert "│ f1 │ 0.98 │" in shown and "hot path: the API showed them 1.2 s" in shown
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index(START) < readme.index("Checks: ") < readme.index(END)
