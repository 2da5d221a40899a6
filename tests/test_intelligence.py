"""Customer intelligence on the session's warehouse (built by the real Dagster job): the funnel,
attribution, lead routing, audiences and predictions, each checked against an independent
computation from the layers below, and rebuilt with dbt on a copy to see history and stability."""

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cdp.core.config import PROJECT_ROOT, project_var
from cdp.intelligence.audiences import (
    AudienceError,
    compile_audiences,
    load_audience,
    load_audiences,
)
from cdp.intelligence.predict import FEATURES, features_as_of, latest_activity
from cdp.intelligence.tables import RUNS
from tests.conftest import dbt_build

CDP = str(Path(sys.executable).parent / "cdp")
NBA = "{{cdp_next_best_action: {{churn_risk_threshold: {}, high_value_monetary_score: 4}}}}"
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")


def members(con, audience: str) -> set[tuple[str]]:
    return set(
        con.execute(
            "select profile_id from marts.audience_memberships where audience = ?", [audience]
        ).fetchall()
    )


@pytest.fixture(scope="module")
def copy(full_run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("intelligence") / "copy.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    return path


def test_mql_to_sal_rate_matches_the_crm_history(warehouse):
    reached = warehouse.execute(
        """select contact_id,
                  bool_or(lead_status in ('MQL', 'SAL', 'SQL', 'Opportunity', 'Customer')) as mql,
                  bool_or(lead_status in ('SAL', 'SQL', 'Opportunity', 'Customer')) as sal
           from staging.stg_crm__lead_status_history group by contact_id"""
    ).fetchall()
    mql = sum(1 for _, m, _ in reached if m)
    sal = sum(1 for _, m, s in reached if m and s)
    entered, converted, rate = warehouse.execute(
        """select leads_entered, leads_converted, conversion_rate from marts.funnel_conversion
           where from_stage = 'mql' and lead_source = '(all)' and first_touch_campaign = '(all)'"""
    ).fetchone()
    assert (entered, converted) == (mql, sal)
    assert float(rate) == pytest.approx(sal / mql, abs=1e-4)
    # every breakdown adds up to the overall row
    by_source = warehouse.execute(
        """select sum(leads_entered) from marts.funnel_conversion
           where from_stage = 'mql' and lead_source != '(all)' and first_touch_campaign = '(all)'"""
    ).fetchone()[0]
    assert by_source == entered


def test_every_attribution_model_splits_each_conversion_exactly_once(warehouse):
    sums = warehouse.execute(
        "select conversion_id, "
        + ", ".join(f"sum({m}_credit)" for m in MODELS)
        + " from marts.attribution_touchpoint_credits group by conversion_id"
    ).fetchall()
    assert len(sums) > 1000
    for conversion_id, *credits in sums:
        assert all(float(c) == pytest.approx(1.0, abs=1e-5) for c in credits), conversion_id
    # touches after a conversion or outside the 30-day window never get credit
    late = warehouse.execute(
        """select count(*) from marts.attribution_touchpoint_credits
           where touched_at > converted_at or touched_at <= converted_at - interval 30 day"""
    ).fetchone()[0]
    assert late == 0


def test_attributed_revenue_adds_up_to_all_purchase_revenue(warehouse):
    revenue = float(
        warehouse.execute(
            "select sum(amount_eur) from intermediate.int_customer_transactions where is_revenue"
        ).fetchone()[0]
    )
    credited_rows = warehouse.execute(
        "select count(*) from marts.attribution_touchpoint_credits"
    ).fetchone()[0]
    for model in MODELS:
        total = warehouse.execute(
            f"""select sum({model}_revenue_eur) from marts.attribution_by_channel
                where conversion_type = 'purchase'"""
        ).fetchone()[0]
        # credits are rounded to the cent per touch
        assert abs(float(total) - revenue) <= 0.005 * credited_rows + 0.01, model


def test_routing_keeps_account_owners_territories_and_capacity(warehouse):
    wrong_owner = warehouse.execute(
        """select count(*) from marts.lead_assignments a
           join intermediate.int_lead_features f using (contact_id)
           where a.routing_rule = 'account_owner' and a.owner_name != f.account_owner_name"""
    ).fetchone()[0]
    assert wrong_owner == 0
    outside = warehouse.execute(
        """select count(*) from marts.lead_assignments a
           join reference.sales_reps r on r.rep_name = a.owner_name
           where a.routing_rule = 'territory_round_robin'
             and (r.territory != a.territory or not r.is_active)"""
    ).fetchone()[0]
    assert outside == 0
    over = warehouse.execute(
        """select r.rep_name, count(*), any_value(r.capacity) from marts.lead_assignments a
           join reference.sales_reps r on r.rep_name = a.owner_name
           where r.rep_name in (select owner_name from marts.lead_assignments
                                where routing_rule = 'territory_round_robin')
           group by r.rep_name having count(*) > any_value(r.capacity)"""
    ).fetchall()
    assert over == []  # round robin never fills a rep beyond capacity
    routed = warehouse.execute(
        """select count(*) from marts.lead_scores s
           where s.is_marketing_qualified and s.lead_status in ('New', 'Open', 'In Progress', 'MQL')
             and s.contact_id not in (select contact_id from marts.lead_assignments)"""
    ).fetchone()[0]
    assert routed == 0  # every qualified lead is assigned or queued


def test_audience_members_are_exactly_who_the_definition_describes(warehouse):
    expected = set(
        warehouse.execute(
            """select t.profile_id from marts.customer_traits t
               join marts.customer_next_best_actions a using (profile_id)
               where t.monetary_score >= 4 and a.churn_risk = 'high'
                 and t.consent_email_marketing_email and not t.has_open_critical_ticket"""
        ).fetchall()
    )
    found = members(warehouse, "high_value_at_risk")
    assert found == expected and found
    critical = warehouse.execute(
        "select count(*) from marts.customer_traits where has_open_critical_ticket"
    ).fetchone()[0]
    sizes = dict(
        warehouse.execute(
            "select audience, member_count from marts.audience_sizes where is_latest"
        ).fetchall()
    )
    assert sizes["critical_support_cases"] == critical
    assert set(sizes) == set(load_audiences())


def test_compiled_audience_models_are_current():
    assert compile_audiences(check=True) == []


@pytest.mark.parametrize(
    "definition, message",
    [
        ("conditions: [{attribute: revenue, op: '>', value: 1}]", "conditions.0.attribute"),
        ("conditions: [{attribute: revenue_eur, op: in, value: 5}]", "conditions.0.value"),
        ("conditions: [{attribute: revenue_eur, op: '~', value: 5}]", "conditions.0.op"),
        ("conditions: [{attribute: revenue_eur, op: '>', value: 1}]\nconsent: yes", "consent"),
    ],
)
def test_invalid_audiences_name_the_file_and_field(tmp_path, definition, message):
    from cdp.intelligence.audiences import compiled_files

    path = tmp_path / "broken.yml"
    path.write_text(f"name: broken\ndescription: d\n{definition}\n")
    with pytest.raises(AudienceError) as error:
        compiled_files({"broken": load_audience(path)})
    assert str(path) in str(error.value) and message in str(error.value)


def test_membership_history_records_who_entered_and_left(copy):
    con = duckdb.connect(str(copy), read_only=True)
    before = members(con, "high_value_at_risk")
    con.close()
    selection = ["--select", "customer_next_best_actions+", "audience_memberships_snapshot+"]
    # a lower churn threshold lets more people in; a higher one pushes some out
    for threshold in (0.4, 0.7):
        dbt_build(*selection, "--vars", NBA.format(threshold), env={"CDP_WAREHOUSE": str(copy)})
    con = duckdb.connect(str(copy), read_only=True)
    after = members(con, "high_value_at_risk")
    history = con.execute(
        """select profile_id, entered_at, exited_at from marts.audience_membership_history
           where audience = 'high_value_at_risk'"""
    ).fetchall()
    sizes = con.execute(
        """select member_count, entered_count, exited_count from marts.audience_sizes
           where audience = 'high_value_at_risk' order by measured_at"""
    ).fetchall()
    con.close()
    assert after < before  # stricter now
    current = {(p,) for p, _, exited in history if exited is None}
    assert current == after
    left = {(p,) for p, _, exited in history if exited is not None}
    assert left >= before - after and left
    assert sizes[-1][0] == len(after)
    assert sizes[-1][2] > 0 and sizes[1][1] > 0  # people left at the last build, joined before


def test_routed_leads_keep_their_rep_when_routing_runs_again(copy, warehouse):
    before = dict(
        warehouse.execute(
            "select contact_id, owner_name from marts.lead_assignments where owner_name is not null"
        ).fetchall()
    )
    dbt_build("--select", "lead_assignments", env={"CDP_WAREHOUSE": str(copy)})
    con = duckdb.connect(str(copy), read_only=True)
    after = dict(
        con.execute(
            "select contact_id, owner_name from marts.lead_assignments where owner_name is not null"
        ).fetchall()
    )
    con.close()
    assert before and all(after[c] == owner for c, owner in before.items())


def test_predictions_are_evaluated_and_beat_naive_baselines(warehouse):
    metric, value, train_rows, holdout_rows, scored = warehouse.execute(
        f"""select metric, value, train_rows, holdout_rows, scored_rows from {RUNS}
            order by trained_at desc limit 1"""
    ).fetchone()
    metrics = dict(zip(metric, value, strict=True))
    assert train_rows > 3 * holdout_rows / 1.01 and holdout_rows > 100
    assert metrics["churn_auc"] > max(0.55, metrics["churn_auc_recency_baseline"])
    assert metrics["clv_mae_eur"] < min(
        metrics["clv_mae_mean_baseline_eur"], metrics["clv_mae_last_year_baseline_eur"]
    )
    # the served model is the better of the two on the holdout
    assert metrics["churn_auc"] == max(metrics["churn_auc_linear"], metrics["churn_auc_bg_nbd"])
    assert metrics["clv_mae_eur"] == min(
        metrics["clv_mae_linear_eur"], metrics["clv_mae_bg_nbd_gamma_gamma_eur"]
    )
    buyers = warehouse.execute(
        """select count(distinct profile_id) from intermediate.int_customer_transactions
           where is_revenue"""
    ).fetchone()[0]
    assert scored == buyers
    features = warehouse.execute(
        "select distinct feature from ml.feature_importance where model = 'churn'"
    ).fetchall()
    assert {f for (f,) in features} == set(FEATURES)


def test_lead_model_beats_the_rule_score_and_follows_the_true_drivers(warehouse, landing):
    """Fitted on older leads, tested on the newest (time split); compared with the generator's
    true chance of each lead (true_leads.csv), which the model never sees."""
    from scipy.stats import spearmanr

    from cdp.intelligence import tables

    metric, value, holdout_rows = warehouse.execute(
        f"select metric, value, holdout_rows from {tables.LEAD_RUNS} "
        "order by trained_at desc limit 1"
    ).fetchone()
    metrics = dict(zip(metric, value, strict=True))
    assert holdout_rows > 300
    assert metrics["model_auc_sal"] >= 0.75
    assert metrics["model_auc_sal"] > metrics["rule_auc_sal"]
    lift = dict(
        warehouse.execute(
            f"select decile, lift from {tables.LEAD_LIFT} where scorer = 'model'"
        ).fetchall()
    )
    assert sorted(lift) == list(range(1, 11))
    assert lift[1] > 1.4 and lift[1] > lift[10] * 2
    scored = warehouse.execute(
        f"select contact_id, sal_probability, score_reasons from {tables.LEAD_PREDICTIONS}"
    ).fetchall()
    leads = warehouse.execute("select count(*) from marts.lead_scores").fetchone()[0]
    assert len(scored) == leads
    assert sum(bool(reasons) for _, _, reasons in scored) > 0.9 * leads
    truth = {
        row["contact_id"]: float(row["chance_of_sal"])
        for row in csv.DictReader((landing / "true_leads.csv").open(encoding="utf-8"))
    }
    pairs = [(p, truth[c]) for c, p, _ in scored if c in truth]
    assert len(pairs) > 0.95 * leads
    assert spearmanr(*zip(*pairs, strict=True)).statistic > 0.6
    rules = {r["name"]: r["points"] for r in project_var("cdp_lead_scoring")["rules"]}
    refitted = dict(
        warehouse.execute(
            f"select rule_name, calibrated_points from {tables.LEAD_CALIBRATION}"
        ).fetchall()
    )
    assert refitted and set(refitted) <= set(rules)
    assert refitted["decision_maker"] > 0  # a true driver of the generated data


def test_preferred_sizes_and_brands_recover_the_true_ones(warehouse, landing):
    """The generator gives every buyer their own sizes and a favourite brand
    (true_behaviour.csv); the preferences, read from messy order lines through identity
    resolution, find them for most buyers."""
    folder = str(landing).replace("'", "''")
    shoes, clothing, brand, buyers = warehouse.execute(
        f"""with truth as (select * from read_csv('{folder}/true_behaviour.csv', all_varchar=true)),
        records as (
            select records.profile_id, known.person_id
            from intermediate.int_profile_records as records
            inner join read_csv('{folder}/ground_truth.csv', all_varchar=true) as known
                on records.source = 'shop' and records.source_record_id = known.source_record_id
        )
        select
            avg(case when p.preferred_shoe_size = t.shoe_size then 1.0 else 0 end)
                filter (where p.preferred_shoe_size is not null),
            avg(case when p.preferred_clothing_size = t.clothing_size then 1.0 else 0 end)
                filter (where p.preferred_clothing_size is not null),
            avg(case when p.top_brand = t.favourite_brand then 1.0 else 0 end)
                filter (where p.top_brand is not null),
            count(*) filter (where p.top_brand is not null)
        from marts.customer_preferences as p
        inner join records using (profile_id)
        inner join truth as t using (person_id)"""
    ).fetchone()
    assert buyers > 1000
    # one purchase can be a gift in a neighbouring size, or another brand than the favourite
    assert shoes > 0.75 and clothing > 0.75 and brand > 0.4  # a guess: 1 in 6


def test_campaign_returns_rank_the_campaigns_as_their_true_returns(warehouse, landing):
    """Campaigns win orders in proportion to spend times a true return (true_effects.json):
    the ROAS each attribution model gives must rank them the same way."""
    import json

    from scipy.stats import spearmanr

    truth = json.loads((landing / "true_effects.json").read_text(encoding="utf-8"))
    returns = truth["campaign_relative_return_per_eur"]
    for model in ("last_touch", "time_decay"):
        roas = dict(
            warehouse.execute(
                f"""select campaign, {model}_roas from marts.campaign_roi
                    where spend_eur > 0 and campaign in ({", ".join("?" * len(returns))})""",
                list(returns),
            ).fetchall()
        )
        assert set(roas) == set(returns), model
        ranked = spearmanr([returns[c] for c in roas], [roas[c] for c in roas]).statistic
        assert ranked > 0.8, (model, roas)


def test_training_features_never_see_the_future(full_run, tmp_path):
    path = tmp_path / "past.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    con = duckdb.connect(str(path))
    cutoff = latest_activity(con) - dt.timedelta(days=365)
    with_future = features_as_of(con, cutoff)
    con.execute(
        "delete from intermediate.int_customer_transactions where transacted_at >= ?", [cutoff]
    )
    con.execute("delete from staging.stg_email__activity where occurred_at >= ?", [cutoff])
    con.execute("delete from staging.stg_web__events where occurred_at >= ?", [cutoff])
    without_future = features_as_of(con, cutoff)
    con.close()
    assert len(with_future) > 500
    assert with_future.equals(without_future)


def test_recommended_products_are_new_to_the_profile_and_their_counts_true(warehouse):
    """Each co-purchase recommendation, recomputed from the shop's orders and lines: the profile
    bought the product the reason names and not the one offered, and "k of n who bought it also
    bought this" are the true counts of profiles."""
    bought: dict[str, set[str]] = {}
    for profile_id, sku in warehouse.execute(
        """select distinct r.profile_id, l.sku
           from staging.stg_shop__order_lines l
           join staging.stg_shop__orders o on o.order_id = l.order_id
           join marts.customer_profile_records r
             on r.source = 'shop' and r.source_record_id = cast(o.customer_id as varchar)
           where o.order_status not in ('cancelled', 'refunded') and l.quantity > 0
             and o.total_amount is not null and o.ordered_at is not null"""
    ).fetchall():
        bought.setdefault(profile_id, set()).add(sku)
    names = dict(
        warehouse.execute(
            "select sku, product_name from intermediate.int_profile_product_purchases"
        ).fetchall()
    )
    rows = warehouse.execute(
        """select profile_id, recommended_sku, recommendation_reason
           from marts.customer_preferences where recommendation_basis = 'co_purchase'"""
    ).fetchall()
    assert rows, "the test data should give co-purchase recommendations"
    for profile_id, offered, reason in rows:
        match = re.fullmatch(r"bought (.+); (\d+) of (\d+) who bought it also bought this", reason)
        assert match, reason
        assert offered not in bought[profile_id], (profile_id, reason)
        counts = set()  # a name may stand for more than one product
        for source in (sku for sku in bought[profile_id] if names[sku] == match[1]):
            buyers = {p for p, skus in bought.items() if source in skus}
            counts.add((len({p for p in buyers if offered in bought[p]}), len(buyers)))
        assert (int(match[2]), int(match[3])) in counts, (profile_id, reason, counts)
    cross_sells = warehouse.execute(
        """select count(*), count(recommended_sku) from marts.customer_next_best_actions
           where next_best_action = 'cross_sell_recommendation'"""
    ).fetchone()
    assert cross_sells[1] > 0 and cross_sells[1] <= cross_sells[0]


def test_campaign_spend_is_the_cost_export_in_eur_and_roas_its_credited_revenue(warehouse):
    """Spend per campaign recomputed from the raw cost lines (the newest of each line, parsed,
    converted with the seed's rates), and ROAS from the credited revenue."""
    from decimal import Decimal

    with (PROJECT_ROOT / "seeds" / "currency_rates.csv").open(encoding="utf-8") as rates_file:
        rates = {
            row["currency"]: Decimal(row["eur_per_unit"]) for row in csv.DictReader(rates_file)
        }
    newest: dict[str, tuple] = {}
    for cost_id, campaign, cost, currency, loaded_at in warehouse.execute(
        "select cost_id, campaign, cost, currency, _loaded_at from raw.ads__campaign_costs"
    ).fetchall():
        if cost_id not in newest or loaded_at > newest[cost_id][3]:
            newest[cost_id] = (campaign.strip().lower(), cost, currency.strip().upper(), loaded_at)
    spend: dict[str, Decimal] = {}
    for campaign, cost, currency, _ in newest.values():
        spend[campaign] = spend.get(campaign, Decimal(0)) + Decimal(cost) * rates[currency]
    rows = warehouse.execute(
        """select lower(campaign), spend_eur, time_decay_revenue_eur, time_decay_roas
           from marts.campaign_roi where campaign not in ('(all)', '(none)')"""
    ).fetchall()
    with_spend = [row for row in rows if row[1] is not None]
    assert {campaign for campaign, *_ in with_spend} == set(spend)
    for campaign, spend_eur, revenue, roas in with_spend:
        assert float(spend_eur) == pytest.approx(float(spend[campaign]), abs=0.01), campaign
        assert float(roas) == pytest.approx(float(revenue / spend_eur), abs=0.005), campaign
    credited = warehouse.execute(
        """select sum(time_decay_revenue_eur) from marts.attribution_by_channel
           where conversion_type = 'purchase' and channel != 'unattributed'"""
    ).fetchone()[0]
    total = warehouse.execute(
        "select sum(time_decay_revenue_eur) from marts.campaign_roi where campaign = '(all)'"
    ).fetchone()[0]
    assert float(total) == pytest.approx(float(credited), abs=0.01)


def test_account_profiles_hold_every_account_its_contacts_and_their_revenue(warehouse):
    accounts, contacts, revenue = warehouse.execute(
        "select count(*), sum(contact_count), sum(revenue_eur) from marts.account_profiles"
    ).fetchone()
    assert (
        accounts
        == warehouse.execute("select count(*) from staging.stg_crm__accounts").fetchone()[0]
    )
    assert (
        contacts
        == warehouse.execute(
            "select count(*) from staging.stg_crm__contacts where account_id is not null"
        ).fetchone()[0]
    )
    # revenue of each account's distinct profiles, recomputed from the CRM contacts
    expected = warehouse.execute(
        """select sum(t.revenue_eur) from (
               select distinct c.account_id, r.profile_id
               from staging.stg_crm__contacts c
               join marts.customer_profile_records r
                 on r.source = 'crm' and r.source_record_id = c.contact_id
               where c.account_id is not null) p
           join marts.customer_traits t using (profile_id)"""
    ).fetchone()[0]
    assert revenue == expected and revenue > 0


def test_email_is_the_next_best_channel_only_with_consent(warehouse):
    without = warehouse.execute(
        """select count(*) from marts.customer_next_best_actions a
           where a.next_best_channel = 'email' and a.profile_id not in (
               select profile_id from marts.customer_consents
               where purpose = 'email_marketing' and channel = 'email' and is_granted)"""
    ).fetchone()[0]
    assert without == 0


def test_insights_prints_the_headline_figures(full_run):
    import json

    done = subprocess.run([CDP, "insights", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert {a["audience"] for a in figures["audiences"]} == set(load_audiences())
    assert [f["from_stage"] for f in figures["funnel"]] == [
        "lead",
        "mql",
        "sal",
        "sql",
        "opportunity",
    ]
    assert figures["top_channels_by_attributed_revenue"]
    returns = [c["roas"] for c in figures["top_campaigns_by_return"]]
    assert returns and returns == sorted(returns, reverse=True)
    assert figures["model_metrics"]["churn_auc"] > 0.5
    assert figures["lead_model"]["metrics"]["model_auc_sal"] > 0.5
    assert [d["decile"] for d in figures["lead_model"]["lift_by_decile"]] == list(range(1, 11))
    channels = {c["channel"] for c in figures["preferences"]["preferred_channels"]}
    assert "web" in channels and channels <= {"email", "web", "app", "store", "phone"}
    assert "co_purchase" in {r["basis"] for r in figures["preferences"]["recommendations"]}


@pytest.mark.parametrize(
    ("module", "inputs"), [("predict", "INPUTS"), ("lead_scoring", "LEAD_INPUTS")]
)
def test_the_models_inputs_are_every_relation_their_sql_reads(module, inputs):
    """Dagster's deps of the model assets come from the inputs listed in
    cdp.intelligence.tables: they must name what the model's SQL reads."""
    import importlib

    from cdp.intelligence import tables

    code = importlib.import_module(f"cdp.intelligence.{module}")
    source = Path(code.__file__).read_text(encoding="utf-8")
    read = set(re.findall(r"\b(?:staging|intermediate|marts)\.\w+", source))
    assert read == set(getattr(tables, inputs))


SLA_VARS = (
    "{{cdp_lead_workflow: {{grades: [{{grade: A, min_score: 0, sla_hours: {hours}}}], "
    "max_reassignments: 2, aging_half_life_days: 14}}}}"
)
WORKFLOW_MODELS = (
    "stg_lead_workflow__decisions lead_assignments lead_tasks lead_notifications "
    "lead_status_history"
)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CDP, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_lead_workflow_records_decisions_and_reassigns_breached_tasks(full_run, tmp_path):
    path = tmp_path / "leads.duckdb"
    shutil.copy(os.environ["CDP_WAREHOUSE"], path)
    env = {"CDP_WAREHOUSE": str(path), "CDP_USER": "anna.rep"}
    con = duckdb.connect(str(path), read_only=True)
    grades = {g["grade"]: g for g in project_var("cdp_lead_workflow")["grades"]}
    tasks = con.execute(
        """select contact_id, owner_name, grade, lead_score, created_at, due_at
           from marts.lead_tasks where status = 'open' order by contact_id"""
    ).fetchall()
    con.close()
    assert len(tasks) > 10
    for _, _, grade, score, created_at, due_at in tasks:
        assert score >= grades[grade]["min_score"]
        assert due_at - created_at == dt.timedelta(hours=grades[grade]["sla_hours"])
    accepted, rejected = tasks[0], tasks[1]

    done = _cli("leads", "accept", accepted[0], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = _cli("leads", "reject", rejected[0], "--reason", " ", env=env)
    assert refused.returncode == 2 and "reason" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    done = _cli("leads", "reject", rejected[0], "--reason", "student, no budget", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    unknown = _cli("leads", "accept", "C-NOBODY", env=env)
    assert unknown.returncode == 2 and "no lead task" in unknown.stdout + unknown.stderr

    # Every task due at once, rebuilt from scratch: the same routing, so the decisions apply;
    # the next run finds the others breached and gives them to another rep (due in an hour).
    build = ("--select", *WORKFLOW_MODELS.split())
    dbt_build(*build, "--full-refresh", "--vars", SLA_VARS.format(hours=0), env=env)
    dbt_build(*build, "--vars", SLA_VARS.format(hours=1), env=env)

    con = duckdb.connect(str(path), read_only=True)
    status = dict(
        con.execute(
            "select contact_id, status from marts.lead_tasks where assignment_number = 1"
        ).fetchall()
    )
    assert status[accepted[0]] == "accepted" and status[rejected[0]] == "rejected"
    history = con.execute(
        """select contact_id, lead_status, changed_by, reason from marts.lead_status_history
           where recorded_in = 'cdp' and lead_status in ('SAL', 'Rejected')"""
    ).fetchall()
    assert sorted(history) == sorted(
        [
            (accepted[0], "SAL", "anna.rep", ""),
            (rejected[0], "Rejected", "anna.rep", "student, no budget"),
        ]
    )
    moved = con.execute(
        """select a.contact_id, a.owner_name, a.previous_owner_name, a.territory, r.territory
           from marts.lead_assignments a join reference.sales_reps r on r.rep_name = a.owner_name
           where a.routing_rule = 'sla_reassigned'"""
    ).fetchall()
    assert moved
    for contact_id, owner, previous_owner, territory, rep_territory in moved:
        assert owner != previous_owner and territory == rep_territory
        assert status[contact_id] == "breached"
    assert not {accepted[0], rejected[0]} & {m[0] for m in moved}
    second = dict(
        con.execute(
            """select contact_id, status from marts.lead_tasks where assignment_number = 2"""
        ).fetchall()
    )
    assert set(second) == {m[0] for m in moved} and set(second.values()) == {"open"}
    alerts = con.execute(
        """select n.contact_id, n.rep_name, n.reassigned_to from marts.lead_notifications n
           where n.notification_kind = 'sla_breached'"""
    ).fetchall()
    breached = {c for c, s in status.items() if s == "breached"}
    assert {a[0] for a in alerts} == breached
    reassigned_to = {m[0]: (m[2], m[1]) for m in moved}
    for contact_id, rep, new_rep in alerts:
        if contact_id in reassigned_to:
            assert (rep, new_rep) == reassigned_to[contact_id]
    con.close()


def test_the_true_churn_chance_is_what_the_purchase_process_does():
    """Customers drawn from the generator's process (a rate while alive, a dropout chance after
    each purchase) churn as often as `true_churn_chance` says, bin by bin."""
    import itertools
    import random

    import numpy as np

    from cdp.intelligence.evaluation import true_churn_chance
    from cdp.intelligence.predict import CHURN_DAYS

    rng = random.Random(3)
    effects = {"rate_newsletter": 0.25, "dropout_support_tickets": 0.12}
    rows = []
    for _ in range(40_000):
        rate, dropout = rng.choice((1.0, 3.0, 8.0)), rng.choice((0.05, 0.2, 0.4))
        newsletter, tickets = rng.random() < 0.5, rng.random() < 0.3
        per_day = rate * np.exp(0.25 * newsletter) / 365
        leave = min(0.95, dropout + 0.12 * tickets)
        when, alive, last = rng.expovariate(per_day), True, None
        while when < 730 and alive:  # two years of history up to the cutoff
            last = when
            alive = rng.random() >= leave
            when += rng.expovariate(per_day)
        if last is None:
            continue  # no purchase before the cutoff: not a customer yet
        churned = not (alive and when < 730 + CHURN_DAYS)
        rows.append((730 - last, rate, dropout, newsletter, tickets, churned))
    d, rate, dropout, newsletter, tickets, churned = map(np.array, zip(*rows, strict=True))
    chance = true_churn_chance(d, rate, dropout, newsletter, tickets, effects)
    edges = np.quantile(chance, np.linspace(0, 1, 11))
    for low, high in itertools.pairwise(edges):
        inside = (chance >= low) & (chance <= high)
        assert abs(churned[inside].mean() - chance[inside].mean()) < 0.02, (low, high)


def test_the_churn_ceiling_from_the_true_parameters_bounds_the_model(warehouse, landing):
    """Ranked by each customer's true churn chance, the training run's holdout gives the
    highest AUC purchase history allows: above recency, and not below the served model."""
    from cdp.intelligence.evaluation import churn_ceiling
    from cdp.intelligence.tables import latest_metrics

    ceiling = churn_ceiling(warehouse, landing)
    metrics = latest_metrics(warehouse, RUNS)
    holdout = warehouse.execute(f"select holdout_rows from {RUNS} order by trained_at desc")
    assert ceiling.holdout_customers == holdout.fetchone()[0]
    assert ceiling.with_truth >= 0.97 * ceiling.holdout_customers
    # the same customers as the training run's holdout: recency ranks them as it did there
    assert abs(ceiling.recency_auc - metrics["churn_auc_recency_baseline"]) < 0.01
    assert ceiling.oracle_auc > ceiling.recency_auc + 0.01
    assert ceiling.oracle_auc > ceiling.served_auc - 0.01
    assert ceiling.served_auc == round(metrics["churn_auc"], 4)
    # the process's own forecast from the history knows less than the true parameters, and the
    # served model, fitted on the data alone, gets as far within the noise of the holdout
    assert ceiling.oracle_auc > ceiling.process_auc
    assert 0.01 < ceiling.served_auc_standard_error < 0.1
    assert ceiling.served_auc > ceiling.process_auc - 2 * ceiling.served_auc_standard_error


def test_the_process_forecast_matches_the_churn_it_forecasts():
    """Customers drawn from the generator's population and process: their histories' forecast
    churn chance is what happens to them, quintile by quintile, and ranks them below the truth."""
    import itertools

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from cdp.demo.behaviour import PURCHASES
    from cdp.intelligence.evaluation import process_churn_chance, true_churn_chance
    from cdp.intelligence.predict import CHURN_DAYS

    rng = np.random.default_rng(3)
    rows = []
    while len(rows) < 4000:
        newsletter, tickets = rng.random() < 0.4, rng.random() < 0.2
        rate = (
            PURCHASES["rate_mean_per_year"]
            * rng.gamma(PURCHASES["rate_shape"], 1 / PURCHASES["rate_shape"])
            * np.exp(PURCHASES["rate_intent"] * rng.normal())
        )
        dropout = rng.beta(PURCHASES["dropout_a"], PURCHASES["dropout_b"])
        per_day = rate * np.exp(PURCHASES["rate_newsletter"] * newsletter) / 365
        leave = min(0.95, dropout + PURCHASES["dropout_support_tickets"] * tickets)
        first = rng.uniform(0, 700)  # days before the cutoff at 730
        when, times = first, []
        while when < 730 + CHURN_DAYS:
            times.append(when)
            if rng.random() < leave:
                break
            when += rng.exponential(1 / per_day)
        before = [t for t in times if t < 730]
        if not before:
            continue
        churned = not any(730 <= t < 730 + CHURN_DAYS for t in times)
        rows.append((len(before), 730 - before[0], 730 - before[-1], rate, dropout, newsletter,
                     tickets, churned))  # fmt: skip
    count, age, gap, rate, dropout, newsletter, tickets, churned = map(
        np.array, zip(*rows, strict=True)
    )
    forecast = process_churn_chance(count, age, gap, newsletter, tickets, PURCHASES)
    edges = np.quantile(forecast, np.linspace(0, 1, 6))
    for low, high in itertools.pairwise(edges):
        inside = (forecast >= low) & (forecast <= high)
        assert abs(churned[inside].mean() - forecast[inside].mean()) < 0.04, (low, high)
    truth = true_churn_chance(gap, rate, dropout, newsletter, tickets, PURCHASES)
    assert roc_auc_score(churned, truth) > roc_auc_score(churned, forecast) + 0.02
    assert roc_auc_score(churned, forecast) > roc_auc_score(churned, gap) + 0.01
