"""Customer traits on the session warehouse, recomputed independently from staging and the
currency seed, in Python."""

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal


def _eur(amount, rate):
    # SQL round(): halves away from zero
    return (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _records(warehouse, source):
    return dict(
        warehouse.execute(
            "select source_record_id, profile_id from marts.customer_profile_records"
            " where source = ?",
            [source],
        ).fetchall()
    )


def test_revenue_counts_only_kept_orders_in_euros(warehouse):
    rates = dict(
        warehouse.execute("select currency, eur_per_unit from reference.currency_rates").fetchall()
    )
    revenue, purchases = defaultdict(Decimal), defaultdict(int)
    shop = _records(warehouse, "shop")
    for customer_id, status, amount, currency in warehouse.execute(
        "select cast(customer_id as varchar), order_status, total_amount, currency"
        " from staging.stg_shop__orders"
    ).fetchall():
        if customer_id in shop and status not in ("cancelled", "refunded"):
            revenue[shop[customer_id]] += _eur(amount, rates[currency])
            purchases[shop[customer_id]] += 1
    loyalty = _records(warehouse, "loyalty")
    for card, amount, currency in warehouse.execute(
        "select card_number, amount, currency from staging.stg_loyalty__purchases"
    ).fetchall():
        if card in loyalty:
            revenue[loyalty[card]] += _eur(amount, rates[currency])
            purchases[loyalty[card]] += 1
    traits = {
        pid: (count, value, stage)
        for pid, count, value, stage in warehouse.execute(
            "select profile_id, purchase_count, revenue_eur, lifecycle_stage"
            " from marts.customer_traits"
        ).fetchall()
    }
    assert len(revenue) > 3000
    for pid, value in revenue.items():
        assert traits[pid][:2] == (purchases[pid], value), pid
        assert traits[pid][2] == "customer"
    buyers = {pid for pid, (count, _, _) in traits.items() if count}
    assert buyers == set(revenue)


def test_open_critical_ticket_flag_matches_the_support_desk(warehouse):
    support = _records(warehouse, "support")
    expected = {
        support[ticket]
        for ticket, priority, status in warehouse.execute(
            "select ticket_id, priority, ticket_status from staging.stg_support__tickets"
        ).fetchall()
        if ticket in support and priority == "critical" and status in ("open", "pending")
    }
    flagged = {
        r[0]
        for r in warehouse.execute(
            "select profile_id from marts.customer_traits where has_open_critical_ticket"
        ).fetchall()
    }
    assert expected and flagged == expected


def test_recency_traits_count_back_from_the_data_not_the_wall_clock(warehouse):
    """The demo's data ends 2026-11-01: built any day after, recency counts back from the newest
    activity the warehouse holds, not from the day of the build."""
    as_of = warehouse.execute("select as_of from intermediate.int_data_as_of").fetchone()[0]
    newest = warehouse.execute(
        """select max(t) from (
            select max(occurred_at) as t from staging.stg_web__events where occurred_at <= now()
            union all select max(transacted_at) from intermediate.int_customer_transactions
                where transacted_at <= now()
            union all select max(occurred_at) from staging.stg_email__activity
                where occurred_at <= now()
            union all select max(changed_at) from staging.stg_crm__lead_status_history
                where changed_at <= now()) as activity"""
    ).fetchone()[0]
    recent = warehouse.execute(
        "select count(*) from marts.customer_traits where web_events_last_30_days > 0"
    ).fetchone()[0]
    expected = warehouse.execute(
        """select count(distinct r.profile_id) from staging.stg_web__events e
        join marts.customer_profile_records r
            on r.source = 'web' and r.source_record_id = e.anonymous_id
        where e.occurred_at >= ? - interval 30 day""",
        [as_of],
    ).fetchone()[0]
    assert as_of == newest
    assert recent == expected > 0
