"""Segment HTTP Tracking API messages: checked, clock-corrected and turned into rows of the web
events export (`sources/web.yml`), which the raw loader and `stg_web__events` already read.

The spec: identify, track, page, screen, group and alias at POST /v1/<call>, a list of them at
POST /v1/batch; `userId` or `anonymousId` on every message (alias: `userId` and `previousId`),
`event` on track, `groupId` on group; `messageId` de-duplicates; `timestamp` is corrected for
the client's clock by `receivedAt - sentAt`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

CALLS = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


class InvalidMessage(ValueError):
    """A message the API does not accept; the text names the field."""

    code = "invalid_request"


class MessageTooLarge(InvalidMessage):
    code = "too_large"


@dataclass(frozen=True)
class Accepted:
    message_id: str
    row: dict


def parse_time(value) -> datetime | None:
    """An ISO 8601 time as UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """The collector's timestamp form (UTC, milliseconds, Z); the hot path compares in it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(message: dict, field: str) -> str | None:
    """An id field as text: SDKs send numbers too; blank is absent."""
    value = message.get(field)
    if value is None or isinstance(value, dict | list | bool):
        return None
    value = str(value).strip()
    return value or None


def _object(message: dict, field: str) -> dict | None:
    value = message.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidMessage(f"{field} must be an object")
    return value


def accept(message, received_at: datetime, sent_at=None, shared_context=None, call=None):
    """One message as a row of the web events export, or InvalidMessage naming the field.

    `call` is the endpoint's call (None for /v1/batch, where each message names its `type`);
    `sent_at` and `shared_context` are the batch's when the message has none of its own."""
    if not isinstance(message, dict):
        raise InvalidMessage("a message must be a JSON object")
    kind = call or message.get("type")
    if kind not in CALLS:
        raise InvalidMessage(f"type must be one of {', '.join(CALLS)}, got {kind!r}")
    user_id, anonymous_id = _text(message, "userId"), _text(message, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidMessage("userId or anonymousId is required")
    event = _text(message, "event") if kind == "track" else _text(message, "name")
    if kind == "track" and event is None:
        raise InvalidMessage("event is required on track")
    group_id, previous_id = _text(message, "groupId"), _text(message, "previousId")
    if kind == "group" and group_id is None:
        raise InvalidMessage("groupId is required on group")
    if kind == "alias" and (previous_id is None or user_id is None):
        raise InvalidMessage("alias needs userId and previousId")
    context = {**(shared_context or {}), **(_object(message, "context") or {})}
    traits = _object(message, "traits") or context.get("traits")
    properties = _object(message, "properties")

    # Clock skew: the client's clock is off by sentAt - receivedAt; shift its timestamp back.
    original = message.get("timestamp") or message.get("originalTimestamp")
    happened = parse_time(original)
    sent = parse_time(message.get("sentAt")) or parse_time(sent_at)
    if happened is None:
        happened = received_at
    elif sent is not None:
        happened = happened + (received_at - sent)
    message_id = _text(message, "messageId") or f"cdp-{uuid.uuid4()}"
    row = {
        "event_id": message_id,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "type": kind,
        "event": event,
        "timestamp": iso_utc(happened),
        "traits": traits,
        "context": context or None,
        "properties": properties,
        "group_id": group_id,
        "previous_id": previous_id,
        "original_timestamp": original if isinstance(original, str) else None,
        "sent_at": iso_utc(sent) if sent else None,
        "received_at": iso_utc(received_at),
    }
    return Accepted(message_id, row)


def check_size(message) -> None:
    """InvalidMessage when one message is over the API's 32 KB."""
    if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"a message may be at most {MAX_MESSAGE_BYTES // 1024} KB")
