"""Scores identity resolution against the generator's ground truth.

Pairwise precision and recall: every pair of records the resolver put into one profile is a
predicted pair, every pair that belongs to one person is a true pair. Records that carry nothing
to resolve them by (a browser that never logged in or filled a form, a review signed "Anna M."
without email) are anonymous by nature: they are scored separately and reported, not hidden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

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
    records_anonymous: int
    people: int
    profiles: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    precision: float
    recall: float
    f1: float
    over_merged_profiles: int
    people_in_over_merged_profiles: int
    split_people: int
    merges_through_blocklisted_or_shared: int
    f1_including_anonymous: float

    def as_dict(self) -> dict:
        return asdict(self)


def _truth_files(landing: Path) -> list[str]:
    files = [str(p) for p in sorted(landing.glob("ground_truth*.csv"))]
    if not files:
        raise FileNotFoundError(f"no ground_truth*.csv in {landing}")
    return files


_PAIRS_SQL = """
with cells as (
    select person_id, profile_id, count(*) as n from scored group by 1, 2
), people as (
    select person_id, sum(n) as n from cells group by 1
), profiles as (
    select profile_id, sum(n) as n from cells group by 1
)
select
    (select coalesce(sum(n * (n - 1) / 2), 0) from people),
    (select coalesce(sum(n * (n - 1) / 2), 0) from profiles),
    (select coalesce(sum(n * (n - 1) / 2), 0) from cells)
"""


def _pairwise(con, where: str) -> tuple[int, int, int]:
    con.execute(f"create or replace temp view scored as select * from truth_profiles {where}")
    true_pairs, predicted, correct = con.execute(_PAIRS_SQL).fetchall()[0]
    return int(true_pairs), int(predicted), int(correct)


def _f1(true_pairs: int, predicted: int, correct: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(warehouse: str | Path, landing: str | Path, assignments=None) -> IdentityScore:
    """Score the warehouse's profiles, or `assignments` (a DataFrame of record_key, profile_id
    from another resolver, e.g. a plain Splink clustering) on the same records."""
    con = duckdb.connect(str(warehouse), read_only=True)
    profiles = "marts.customer_profile_records"
    if assignments is not None:
        con.register("other_assignments", assignments)
        profiles = "other_assignments"
    try:
        con.execute(
            "create temp table truth as select source, source_record_id, person_id"
            " from read_csv(?, header = true, all_varchar = true)",
            [_truth_files(Path(landing))],
        )
        own = ", ".join(f"'{k}'" for k in OWN_ID_KINDS)
        con.execute(f"""
            create temp table truth_profiles as
            select
                truth.person_id,
                profiles.profile_id,
                truth.source || ':' || truth.source_record_id as record_key,
                not exists (
                    select 1 from intermediate.int_identifiers as i
                    where i.record_key = records.record_key and i.identifier_kind not in ({own})
                ) and (records.first_name is null or records.last_name is null) as is_anonymous
            from truth
            inner join intermediate.int_identity_records as records
                on records.record_key = truth.source || ':' || truth.source_record_id
            inner join {profiles} as profiles
                on profiles.record_key = records.record_key
        """)
        anonymous = con.execute(
            "select count(*) from truth_profiles where is_anonymous"
        ).fetchall()[0][0]
        true_pairs, predicted, correct = _pairwise(con, "where not is_anonymous")
        precision, recall, f1 = _f1(true_pairs, predicted, correct)
        _, _, f1_all = _f1(*_pairwise(con, ""))
        over_merged, people_over = con.execute("""
            select count(*), coalesce(sum(people), 0) from (
                select profile_id, count(distinct person_id) as people from truth_profiles
                where not is_anonymous group by 1 having count(distinct person_id) > 1)
        """).fetchall()[0]
        split = con.execute("""
            select count(*) from (
                select person_id from truth_profiles where not is_anonymous
                group by 1 having count(distinct profile_id) > 1)
        """).fetchall()[0][0]
        bad_links = con.execute("""
            select count(*) from intermediate.int_identity_edges as edges
            inner join intermediate.int_identifier_quality as quality
                on edges.link_kind = quality.identifier_kind
                and edges.link_value = quality.identifier_value
            where quality.is_blocklisted or quality.is_shared
        """).fetchall()[0][0]
        people, profiles, scored = con.execute("""
            select count(distinct person_id), count(distinct profile_id), count(*)
            from truth_profiles where not is_anonymous
        """).fetchall()[0]
    finally:
        con.close()
    return IdentityScore(
        records_scored=scored,
        records_anonymous=anonymous,
        people=people,
        profiles=profiles,
        true_pairs=true_pairs,
        predicted_pairs=predicted,
        correct_pairs=correct,
        precision=round(precision, 5),
        recall=round(recall, 5),
        f1=round(f1, 5),
        over_merged_profiles=over_merged,
        people_in_over_merged_profiles=int(people_over),
        split_people=split,
        merges_through_blocklisted_or_shared=bad_links,
        f1_including_anonymous=round(f1_all, 5),
    )
