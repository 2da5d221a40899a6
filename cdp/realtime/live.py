"""The hot path: what the collector accepted and the batch build has not yet seen, kept in the
profile store per subject (a profile, or the browser or user id of someone the store does not
know yet), so that the profile API shows it within seconds.

The collector hands every accepted message (a row of the web events export) to `LiveUpdater`,
which resolves its identifiers through the store's index, folds it into the subject's overlay
and ties new identifiers (an anonymous id on an identify) to the known profile. The batch build
reconciles: of a profile's overlay, the API shows only events newer than the newest web event
the warehouse holds for the profile (`traits.last_web_visit_at`), so once loaded, the batch's
values win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cdp.core.config import project_var
from cdp.realtime.collector.messages import iso_utc, parse_time
from cdp.realtime.store import ProfileStore, index_keys

MAX_EVENTS = 200  # kept per subject; older ones are in the warehouse by then
# Segment's consent management: the preferences ride on every event's context; this track event
# (var cdp_consent_event, which stg_web__events reads too) announces a change
CONSENT_EVENT = project_var("cdp_consent_event", "Segment Consent Preference Updated")
# the identifier kinds the web events' ids become (sources/web.yml), in the order they decide
# which profile an event belongs to
EVENT_KINDS = ("shop_customer_id", "email", "cookie_id")
# the source whose records those ids key (sources/web.yml: person_of), for erasure's hashes
RECORD_SOURCES = {"shop_customer_id": "shop", "cookie_id": "web"}
log = logging.getLogger(__name__)


def event_identifiers(row: dict) -> list[str]:
    """The identifiers (`kind:value`) a collected message carries, strongest first."""
    traits = row.get("traits") or {}
    email = traits.get("email") if isinstance(traits, dict) else None
    values = {
        "shop_customer_id": row.get("user_id"),
        "email": email.strip().lower() if isinstance(email, str) and "@" in email else None,
        "cookie_id": row.get("anonymous_id"),
    }
    identifiers = [f"{kind}:{values[kind]}" for kind in EVENT_KINDS if values[kind]]
    if row.get("type") == "alias" and row.get("previous_id"):
        identifiers.append(f"cookie_id:{row['previous_id']}")  # the id the user had before
    return identifiers


def consent_preferences(row: dict) -> dict[str, bool]:
    """Segment's `context.consent.categoryPreferences` (category -> granted) on its consent
    event: the statement a person made. Other events carry the same object as a copy; the
    warehouse (int_consent_statements) takes the event too."""
    if row.get("type") != "track" or row.get("event") != CONSENT_EVENT:
        return {}
    context = row.get("context") or {}
    consent = context.get("consent") if isinstance(context, dict) else None
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return {}
    return {str(k): v for k, v in preferences.items() if isinstance(v, bool)}


def consent_categories() -> dict[str, dict]:
    """Segment consent category -> the purpose and channel of the consent statement it makes
    (var cdp_consent_categories, which int_consent_statements reads too)."""
    return {str(k): v for k, v in (project_var("cdp_consent_categories") or {}).items()}


def _compact(row: dict) -> dict:
    """What the overlay keeps of an event."""
    return {
        "message_id": row["event_id"],
        "type": row["type"],
        "event": row.get("event"),
        "timestamp": row["timestamp"],
        "received_at": row["received_at"],
        "properties": row.get("properties") or {},
        "page": ((row.get("context") or {}).get("page") or {}).get("path"),
    }


def fold(overlay: dict | None, rows: list[dict]) -> dict:
    """The overlay with `rows` added: events (newest MAX_EVENTS, each once), identify traits and
    consent preferences (the latest statement per category wins)."""
    overlay = overlay or {"events": [], "traits": {}, "consents": {}}
    known = {e["message_id"] for e in overlay["events"]}
    for row in rows:
        if row["event_id"] in known:
            continue
        known.add(row["event_id"])
        overlay["events"].append(_compact(row))
        traits = row.get("traits")
        if row["type"] == "identify" and isinstance(traits, dict):
            overlay["traits"].update(traits)
        for category, granted in consent_preferences(row).items():
            before = overlay["consents"].get(category)
            if before is None or before["stated_at"] <= row["timestamp"]:
                overlay["consents"][category] = {"granted": granted, "stated_at": row["timestamp"]}
    overlay["events"].sort(key=lambda e: (e["timestamp"], e["message_id"]))
    del overlay["events"][:-MAX_EVENTS]
    return overlay


def merge(into: dict | None, other: dict) -> dict:
    """Two subjects' overlays as one (an anonymous visitor turned out to be a known profile)."""
    into = into or {"events": [], "traits": {}, "consents": {}}
    known = {e["message_id"] for e in into["events"]}
    into["events"] += [e for e in other["events"] if e["message_id"] not in known]
    into["events"].sort(key=lambda e: (e["timestamp"], e["message_id"]))
    del into["events"][:-MAX_EVENTS]
    into["traits"] = {**other["traits"], **into["traits"]}
    for category, statement in other["consents"].items():
        before = into["consents"].get(category)
        if before is None or before["stated_at"] < statement["stated_at"]:
            into["consents"][category] = statement
    return into


def view(overlay: dict | None, document: dict | None) -> dict:
    """The `live` section the API serves: what the overlay holds beyond the batch's document
    (events newer than the newest web event the warehouse holds for the profile)."""
    overlay = overlay or {"events": [], "traits": {}, "consents": {}}
    through = ((document or {}).get("traits") or {}).get("last_web_visit_at")
    bound = None if through is None else _iso(through)  # once, not per event
    newer = (lambda moment: True) if bound is None else (lambda moment: moment > bound)
    events = [e for e in overlay["events"] if newer(e["timestamp"])]
    counts: dict[str, int] = {}
    for event in events:
        key = event["type"] if event["type"] != "track" else f"track:{event['event']}"
        counts[key] = counts.get(key, 0) + 1
    categories = consent_categories()
    consents = [
        {"category": category, **categories.get(category, {}), **statement}
        for category, statement in sorted(overlay["consents"].items())
        if newer(statement["stated_at"])
    ]
    return {
        "events_since_batch": len(events),
        "event_counts": counts,
        "last_seen_at": events[-1]["timestamp"] if events else None,
        "traits": overlay["traits"],
        "consents": consents,
    }


def with_live_consents(consents: list[str], live_consents: list[dict]) -> list[str]:
    """The batch's `purpose:channel:state` list with newer statements from events in force."""
    current = {c.rpartition(":")[0]: c for c in consents}
    for statement in live_consents:
        if "purpose" in statement and "channel" in statement:
            key = f"{statement['purpose']}:{statement['channel']}"
            current[key] = f"{key}:{'granted' if statement['granted'] else 'withdrawn'}"
    return sorted(current.values())


def cursor_of(event: dict) -> str:
    """A page boundary: events sharing a timestamp stay apart by message id."""
    return f"{event['timestamp']}|{event['message_id']}"


def recent_events(overlay: dict | None, limit: int, before: str | None = None) -> list[dict]:
    """Newest first; only those after the cursor `before` (cursor_of, or a bare timestamp)."""
    events = (overlay or {}).get("events", [])
    if before is not None:
        moment, _, message_id = before.partition("|")
        bound = (moment, message_id or "")
        events = [e for e in events if (e["timestamp"], e["message_id"]) < bound]
    return list(reversed(events))[:limit]


def _iso(value: str) -> str:
    """A warehouse timestamp (naive UTC, space or T) in the collector's form, for comparison."""
    return iso_utc(parse_time(value))


class LiveUpdater:
    """Folds collected messages into the store's overlays; used by the collector after its
    durable write, off the request path. Four store round trips per call, whatever its size."""

    def __init__(self, store: ProfileStore):
        self.store = store

    def apply(self, rows: list[dict]) -> None:
        carried = {id(row): event_identifiers(row) for row in rows}
        everything = sorted({i for identifiers in carried.values() for i in identifiers})
        indexed = self.store.lookup_many(everything)
        links = {k: v for k, v in self.store.live_lookup_many(everything).items() if v}

        def subject_of(identifiers: list[str]) -> str:
            # the batch's index first (it decides), then links made live, then the strongest
            for identifier in identifiers:
                if indexed.get(identifier):
                    return f"profile_id:{indexed[identifier]}"
            for identifier in identifiers:
                if identifier in links:
                    return links[identifier]
            return identifiers[0]

        routed: list[tuple[str, dict]] = []
        moves: list[tuple[str, str]] = []  # an identifier's own overlay joins its new subject
        new_links: dict[str, str] = {}
        for row in rows:
            identifiers = carried[id(row)]
            if not identifiers:
                continue
            subject = subject_of(identifiers)
            routed.append((subject, row))
            for identifier in identifiers:
                # an identifier the batch placed stays there (a shared device does not merge)
                if identifier == subject or indexed.get(identifier):
                    continue
                if links.get(identifier) != subject:
                    moves.append((links.get(identifier, identifier), subject))
                    links[identifier] = new_links[identifier] = subject
        wanted = {s for s, _ in routed} | {old for old, _ in moves} | {new for _, new in moves}
        overlays = self.store.live_get(sorted(wanted))
        by_subject: dict[str, list[dict]] = {}
        for subject, row in routed:
            by_subject.setdefault(subject, []).append(row)
        for subject, subject_rows in by_subject.items():  # one fold (and sort) per subject
            overlays[subject] = fold(overlays.get(subject), subject_rows)
        for old, new in moves:
            if old != new and overlays.get(old) is not None:
                overlays[new] = merge(overlays.get(new), overlays[old])
                overlays[old] = None
        self.store.live_put(overlays, new_links)


def overlay_for(store: ProfileStore, identifier: str) -> tuple[dict | None, dict | None]:
    """(document, overlay) for `kind:value`: the batch's profile and its live overlay, or only an
    overlay for someone the batch does not know yet; (None, None) when neither exists."""
    hit = store.found(identifier)
    if hit is not None:
        return hit[1], hit[2]
    profile_id = None
    linked = store.live_lookup(identifier)
    if linked and linked.startswith("profile_id:"):
        profile_id = linked.partition(":")[2]
    elif linked:
        identifier = linked
    if profile_id is not None:
        document = store.get(profile_id)
        subject = f"profile_id:{profile_id}"
        return document, store.live_get([subject]).get(subject)
    return None, store.live_get([identifier]).get(identifier)


def adopt(store: ProfileStore, documents: list[dict]) -> None:
    """After the batch wrote these profiles: overlays kept under identifiers the batch now places
    in a profile (events that came between the load and the sync) join the profile's."""
    subjects = {
        f"profile_id:{d['profile_id']}": index_keys(d)[1:] for d in documents if d.get("profile_id")
    }
    wanted = [s for own, others in subjects.items() for s in (own, *others)]
    overlays = {s: o for s, o in store.live_get(wanted).items() if o is not None}
    changed: dict[str, dict | None] = {}
    for own, others in subjects.items():
        for other in others:
            if other in overlays:
                overlays[own] = changed[own] = merge(overlays.get(own), overlays.pop(other))
                changed[other] = None
    if changed:
        store.live_put(changed, {})


def forget(store: ProfileStore, belongs: Callable[[str], bool]) -> int:
    """Erasure: delete every overlay whose subject, or an identifier linked to it, `belongs`
    (takes `kind:value`) to the person, and those links; the number of overlays deleted."""
    subjects, links = store.live_scan()
    gone = {s for s in subjects if belongs(s)}
    gone |= {subject for identifier, subject in links.items() if belongs(identifier)}
    stale = {i for i, subject in links.items() if subject in gone or belongs(i)}
    store.live_put(dict.fromkeys(gone), {})
    store.live_unlink(sorted(stale))
    return len(gone & set(subjects))
