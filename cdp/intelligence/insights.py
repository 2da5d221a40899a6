"""Headline figures of the intelligence layer, read from the marts: audience sizes, the funnel,
attribution and campaign returns, lead routing, preferences, predictions and enrichment.
`cdp insights` prints them."""

from __future__ import annotations

from cdp.core.sql import dict_rows
from cdp.intelligence.tables import LEAD_CALIBRATION, LEAD_LIFT, LEAD_RUNS, RUNS, latest_metrics

ATTRIBUTION_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")


def audience_sizes(con) -> list[dict]:
    return dict_rows(
        con,
        """select audience, member_count, entered_count, exited_count, measured_at
           from marts.audience_sizes where is_latest order by audience""",
    )


def funnel(con) -> list[dict]:
    return dict_rows(
        con,
        """select from_stage, to_stage, leads_entered, leads_converted, conversion_rate,
                  median_days_to_convert
           from marts.funnel_conversion
           where lead_source = '(all)' and first_touch_campaign = '(all)'
           order by step_number""",
    )


def mql_to_sal_by_source(con) -> list[dict]:
    return dict_rows(
        con,
        """select lead_source, leads_entered, conversion_rate
           from marts.funnel_conversion
           where from_stage = 'mql' and first_touch_campaign = '(all)' and lead_source != '(all)'
           order by conversion_rate desc, lead_source""",
    )


def top_channels(con, model: str = "time_decay", limit: int = 5) -> list[dict]:
    if model not in ATTRIBUTION_MODELS:
        raise ValueError(f"unknown attribution model {model!r}; known: {ATTRIBUTION_MODELS}")
    columns = ", ".join(f"sum({m}_revenue_eur) as {m}" for m in ATTRIBUTION_MODELS)
    return dict_rows(
        con,
        f"""select channel, {columns}
            from marts.attribution_by_channel
            where conversion_type = 'purchase' and channel != 'unattributed'
            group by channel order by {model} desc limit {int(limit)}""",
    )


def campaign_returns(con, model: str = "time_decay", limit: int = 5) -> list[dict]:
    """The campaigns with recorded spend, best return first under `model`."""
    if model not in ATTRIBUTION_MODELS:
        raise ValueError(f"unknown attribution model {model!r}; known: {ATTRIBUTION_MODELS}")
    return dict_rows(
        con,
        f"""select channel, campaign, spend_eur, {model}_revenue_eur as revenue_eur,
                   {model}_roas as roas, {model}_roi as roi
            from marts.campaign_roi
            where campaign not in ('(all)', '(none)') and spend_eur > 0
            order by {model}_roas desc, channel, campaign limit {int(limit)}""",
    )


def routing(con) -> list[dict]:
    return dict_rows(
        con,
        """select routing_rule, count(*) as leads, count(distinct owner_name) as reps
           from marts.lead_assignments group by routing_rule order by leads desc""",
    )


def lead_tasks(con) -> list[dict]:
    """Lead tasks per status: how many, how many of the decided ones within their SLA, and the
    median hours to a decision."""
    return dict_rows(
        con,
        """select status, count(*) as tasks,
               count(*) filter (where is_within_sla) as within_sla,
               percentile_cont(0.5) within group (order by hours_to_decision)
                   as median_hours_to_decision
           from marts.lead_tasks group by status order by tasks desc, status""",
    )


def preferences(con) -> dict[str, list[dict]]:
    """Profiles per preferred channel and per kind of product recommendation."""
    return {
        "preferred_channels": dict_rows(
            con,
            """select preferred_channel as channel, count(*) as profiles
               from marts.customer_preferences where preferred_channel is not null
               group by preferred_channel order by profiles desc, channel""",
        ),
        "recommendations": dict_rows(
            con,
            """select recommendation_basis as basis, count(*) as profiles
               from marts.customer_preferences where recommendation_basis is not null
               group by recommendation_basis order by profiles desc, basis""",
        ),
    }


def model_metrics(con) -> dict[str, float]:
    return latest_metrics(con, RUNS)


def lead_model(con) -> dict:
    """The predictive lead score against the rule score on the newest decided leads: AUC, lift
    by decile, and the rules' points refitted on outcomes. Empty before the first model."""
    metrics = latest_metrics(con, LEAD_RUNS)
    if not metrics:
        return {}
    return {
        "metrics": metrics,
        "lift_by_decile": dict_rows(
            con,
            f"""select decile,
                   max(case when scorer = 'model' then lift end) as model_lift,
                   max(case when scorer = 'rule' then lift end) as rule_lift,
                   max(case when scorer = 'model' then conversion_rate end) as model_rate,
                   max(case when scorer = 'rule' then conversion_rate end) as rule_rate
               from {LEAD_LIFT} group by decile order by decile""",
        ),
        "rule_points": dict_rows(
            con,
            f"""select rule_name, configured_points, calibrated_points, fired_leads,
                   conversion_rate_when_fired
               from {LEAD_CALIBRATION} order by calibrated_points desc, rule_name""",
        ),
    }


def collect(con) -> dict:
    return {
        "audiences": audience_sizes(con),
        "funnel": funnel(con),
        "mql_to_sal_by_source": mql_to_sal_by_source(con),
        "top_channels_by_attributed_revenue": top_channels(con),
        "top_campaigns_by_return": campaign_returns(con),
        "lead_routing": routing(con),
        "lead_tasks": lead_tasks(con),
        "preferences": preferences(con),
        "model_metrics": model_metrics(con),
        "lead_model": lead_model(con),
    }
