"""Scores identity resolution against a ground truth (the generator's, or a public data set's).

Every record with a known truth is scored by default: a record the warehouse lost (dropped at
load) counts as a profile of its own, and records that carry nothing to resolve them by (a
browser that never logged in, a review signed "Anna M.") count too. The view over resolvable
records only is reported beside it. Pairwise precision and recall: every pair of records put
into one profile is a predicted pair, every pair that belongs to one person a true pair.
B-cubed: per record, the share of its profile that is its person (precision) and of its person
that is in its profile (recall), averaged over records, so big clusters do not dominate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from cdp.core.truth import truth_files
from cdp.core.warehouse import Warehouse, as_warehouse

OWN_ID_KINDS = (
    "crm_contact_id",
    "shop_customer_id",
    "email_subscriber_id",
    "loyalty_card",
    "support_ticket_id",
    "review_id",
    "cookie_id",
)


@dataclass
class IdentityScore:
    records_scored: int
    records_lost: int
    records_unresolvable: int
    people: int
    profiles: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    precision: float
    recall: float
    f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    resolvable_precision: float
    resolvable_recall: float
    resolvable_f1: float
    over_merged_profiles: int
    people_in_over_merged_profiles: int
    split_people: int
    merges_through_blocklisted_or_shared: int
    over_merged_examples: list = field(default_factory=list)
    split_examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def figures(self) -> dict:
        """The numbers, without the examples."""
        return {k: v for k, v in self.as_dict().items() if not k.endswith("_examples")}


# Records per (person, profile), per person and per profile, of the view `scored`.
_CELLS = """
with cells as (
    select person_id, profile_id, count(*) as n from scored group by 1, 2
), people as (
    select person_id, sum(n) as n from cells group by 1
), profiles as (
    select profile_id, sum(n) as n from cells group by 1
)
"""
_PAIRS_SQL = (
    _CELLS
    + """select
    (select coalesce(sum(n * (n - 1) / 2), 0) from people),
    (select coalesce(sum(n * (n - 1) / 2), 0) from profiles),
    (select coalesce(sum(n * (n - 1) / 2), 0) from cells)
"""
)


def _pairwise(con, where: str) -> tuple[int, int, int]:
    con.execute(f"create or replace temp view scored as select * from truth_profiles {where}")
    true_pairs, predicted, correct = con.execute(_PAIRS_SQL).fetchall()[0]
    return int(true_pairs), int(predicted), int(correct)


def _f1(true_pairs: int, predicted: int, correct: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(con: Warehouse, landing: str | Path, assignments=None) -> IdentityScore:
    """Score the warehouse's profiles, or `assignments` (a DataFrame of record_key, profile_id
    from another resolver, e.g. a plain Splink clustering) on the same records. DuckDB: the
    truth is read with read_csv; the work tables are temporary and dropped again."""
    con = as_warehouse(con)
    profiles = "marts.customer_profile_records"
    if assignments is not None:
        con.register("other_assignments", assignments)
        profiles = "other_assignments"
    try:
        con.execute(
            "create or replace temp table truth as select source, source_record_id, person_id"
            " from read_csv(?, header = true, all_varchar = true)",
            [truth_files(Path(landing))],
        )
        own = ", ".join(f"'{k}'" for k in OWN_ID_KINDS)
        # A record the warehouse does not hold is a profile of its own (its key).
        con.execute(f"""
            create or replace temp table truth_profiles as
            select
                truth.person_id,
                coalesce(profiles.profile_id, 'lost:' || keys.record_key) as profile_id,
                keys.record_key,
                profiles.profile_id is null as is_lost,
                coalesce(
                    not exists (
                        select 1 from intermediate.int_identifiers as i
                        where i.record_key = records.record_key
                            and i.identifier_kind not in ({own})
                            and i.identifier_kind not like '%\\_record\\_id' escape '\\'
                    ) and (records.first_name is null or records.last_name is null),
                    false
                ) as is_unresolvable
            from truth
            cross join lateral (
                select truth.source || ':' || truth.source_record_id as record_key
            ) as keys
            left join intermediate.int_identity_records as records
                on records.record_key = keys.record_key
            left join {profiles} as profiles
                on profiles.record_key = keys.record_key
        """)
        lost, unresolvable = con.execute(
            "select count(*) filter (where is_lost), count(*) filter (where is_unresolvable) "
            "from truth_profiles"
        ).fetchall()[0]
        true_pairs, predicted, correct = _pairwise(con, "")
        precision, recall, f1 = _f1(true_pairs, predicted, correct)
        b_precision, b_recall = con.execute(_BCUBED_SQL).fetchall()[0]  # over `scored`: all
        resolvable = _f1(*_pairwise(con, "where not is_unresolvable"))
        b_f1 = 2 * b_precision * b_recall / (b_precision + b_recall) if b_precision else 0.0
        over_merged, people_over = con.execute("""
            select count(*), coalesce(sum(people), 0) from (
                select profile_id, count(distinct person_id) as people from truth_profiles
                group by 1 having count(distinct person_id) > 1)
        """).fetchall()[0]
        split = con.execute("""
            select count(*) from (
                select person_id from truth_profiles where not is_unresolvable
                group by 1 having count(distinct profile_id) > 1)
        """).fetchall()[0][0]
        over_examples = [
            {"profile_id": row[0], "people": row[1], "records": row[2]}
            for row in con.execute("""
                select profile_id, count(distinct person_id), list(record_key order by record_key)
                from truth_profiles group by 1 having count(distinct person_id) > 1
                order by 2 desc, 1 limit 5""").fetchall()
        ]
        split_examples = [
            {"person_id": row[0], "profiles": row[1], "records": row[2]}
            for row in con.execute("""
                select person_id, count(distinct profile_id), list(record_key order by record_key)
                from truth_profiles where not is_unresolvable
                group by 1 having count(distinct profile_id) > 1
                order by 2 desc, 1 limit 5""").fetchall()
        ]
        bad_links = con.execute("""
            select count(*) from intermediate.int_identity_edges as edges
            inner join intermediate.int_identifier_quality as quality
                on edges.link_kind = quality.identifier_kind
                and edges.link_value = quality.identifier_value
            where quality.is_blocklisted or quality.is_shared
        """).fetchall()[0][0]
        people, profile_count, scored = con.execute("""
            select count(distinct person_id), count(distinct profile_id), count(*)
            from truth_profiles
        """).fetchall()[0]
    finally:
        for kind, name in (("view", "scored"), ("table", "truth_profiles"), ("table", "truth")):
            con.execute(f"drop {kind} if exists {name}")
        if assignments is not None:
            con.unregister("other_assignments")
    return IdentityScore(
        records_scored=scored,
        records_lost=lost,
        records_unresolvable=unresolvable,
        people=people,
        profiles=profile_count,
        true_pairs=true_pairs,
        predicted_pairs=predicted,
        correct_pairs=correct,
        precision=round(precision, 5),
        recall=round(recall, 5),
        f1=round(f1, 5),
        bcubed_precision=round(b_precision, 5),
        bcubed_recall=round(b_recall, 5),
        bcubed_f1=round(b_f1, 5),
        resolvable_precision=round(resolvable[0], 5),
        resolvable_recall=round(resolvable[1], 5),
        resolvable_f1=round(resolvable[2], 5),
        over_merged_profiles=over_merged,
        people_in_over_merged_profiles=int(people_over),
        split_people=split,
        merges_through_blocklisted_or_shared=bad_links,
        over_merged_examples=over_examples,
        split_examples=split_examples,
    )


_BCUBED_SQL = (
    _CELLS
    + """select
    sum(cells.n * cells.n / profiles.n) / sum(cells.n),
    sum(cells.n * cells.n / people.n) / sum(cells.n)
from cells
join people using (person_id)
join profiles using (profile_id)
"""
)
