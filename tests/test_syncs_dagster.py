"""The sync assets in the Dagster graph, run for real against the emulators on the warehouse
the session's full run built: the second run sends nothing."""

import os
from contextlib import ExitStack

import duckdb
from dagster import AssetKey, DagsterInstance

from cdp.demo.destinations import received, start_emulators
from reverse_etl.config import load_syncs


def test_sync_assets_sit_downstream_of_their_models(defs):
    graph = defs.resolve_asset_graph()
    for sync in load_syncs().values():
        node = graph.get(AssetKey(["syncs", sync.name]))
        assert node.group_name == "syncs"
        assert AssetKey(["marts", sync.source.split(".")[-1]]) in node.parent_keys
    # The daily graph and the landing job never deliver to outside systems.
    for job_name in ("full_graph", "load_landed_files"):
        selected = defs.resolve_job_def(job_name).asset_layer.executable_asset_keys
        assert not any(key.path[0] == "syncs" for key in selected), job_name


def test_syncs_job_delivers_golden_records_then_sends_nothing(
    full_run, defs, monkeypatch, tmp_path
):
    monkeypatch.setenv("CDP_EXPORT_DIR", str(tmp_path / "exports"))
    with ExitStack() as stack:
        emulators = start_emulators(stack)
        instance = stack.enter_context(DagsterInstance.ephemeral())
        job = defs.resolve_job_def("syncs")
        first = job.execute_in_process(instance=instance)
        assert first.success
        counts = received(emulators)
        assert counts["hubspot"] > 5000
        assert counts["salesforce"] > 1000
        assert counts["braze"] > 1000
        assert counts["webhook"] > 5000
        # every routed lead reached its rep, every audience member the campaign list
        webhook = emulators["webhook"].records.values()
        con = duckdb.connect(os.environ["CDP_WAREHOUSE"], read_only=True)
        notifications = con.execute("select count(*) from marts.lead_notifications").fetchone()[0]
        members = con.execute(
            """select count(*) from marts.audience_memberships m
               join marts.customer_consents c on c.profile_id = m.profile_id
                and c.purpose = 'email_marketing' and c.is_granted
               where m.audience = 'high_value_at_risk'"""
        ).fetchone()[0]
        accounts = con.execute(
            "select account_id, revenue_eur, intent_score from marts.account_profiles"
        ).fetchall()
        con.close()
        # every CRM account reached Salesforce as an Account with its figures
        held = {
            key: record
            for (sobject, key), record in emulators["salesforce"].records.items()
            if sobject == "Account"
        }
        assert set(held) == {account_id for account_id, _, _ in accounts}
        for account_id, revenue, intent in accounts:
            assert held[account_id]["Id"].startswith("001")
            assert held[account_id]["CDP_Intent_Score__c"] == intent
            assert float(held[account_id]["CDP_Revenue_EUR__c"]) == float(revenue)
        assert notifications > 0
        assert sum(r.get("object") == "lead_notification" for r in webhook) == notifications
        assert sum(r.get("object") == "win_back_member" for r in webhook) == members
        checks = first.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)
        second = job.execute_in_process(instance=instance)
        calls = {
            e.asset_key.path[-1]: e.materialization.metadata["calls"].value
            for e in second.get_asset_materialization_events()
        }
        assert set(calls) == set(load_syncs())
        assert set(calls.values()) == {0}


def test_access_export_shows_everything_held_and_where_it_was_sent(full_run, warehouse):
    """Runs after the syncs job above: the export lists the person's deliveries."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    email, profile_id = warehouse.execute(
        "select c.email, c.profile_id from marts.customers c"
        " join reverse_etl.sync_deliveries d on d.record_key = c.profile_id"
        " where c.record_count >= 4"
        " and c.profile_id in (select profile_id from marts.customer_consents)"
        " order by c.profile_id limit 1"
    ).fetchall()[0]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cdp"), "privacy", "export", email],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    assert document["profile_id"] == profile_id
    assert document["identifiers"] and document["attributes_with_provenance"]
    assert all(a["source_system"] for a in document["attributes_with_provenance"])
    assert document["events"] and document["consents"]
    # the profiling outputs, and what the profile API serves (the syncs job filled its store)
    assert (
        document["traits"]["lifecycle_stage"]
        and "churn_probability" in (document["predictions_and_next_best_action"])
    )
    assert isinstance(document["audiences"], list)
    preferences = document["preferences_and_recommendation"]
    assert preferences["profile_id"] == profile_id and "engagement_score" in preferences
    assert isinstance(document["lead_scores"], list)
    assert document["profile_api"]["document"]["profile_id"] == profile_id
    syncs = {d["sync_name"] for d in document["deliveries"]}
    assert "hubspot_contacts" in syncs
    hubspot = next(d for d in document["deliveries"] if d["sync_name"] == "hubspot_contacts")
    assert "email" in hubspot["fields"] and hubspot["delivered_at"]
    assert {s["sync_name"] for s in document["held_by_destinations"]} == syncs
    # The record of processing: every delivery, joined with the changes it carried.
    record = document["processing_record"]
    assert {r["sync_name"] for r in record} == syncs
    carried = [r for r in record if r["attribute"]]
    assert all(r["changed_at"] and r["delivered_at"] for r in carried)
