"""Braze REST emulator: /users/track (<= 75 attribute objects, external_id required, non-fatal
per-object errors, `_update_existing_only` skips unknown users), /users/merge (<= 50 updates;
the merged user is gone, the kept user's values win) and /users/delete; 3,000 requests per 3 s."""

from typing import ClassVar

import orjson

from cdp.core.emulator import Emulator


class BrazeEmulator(Emulator):
    example_sync: ClassVar[dict] = {
        "object": "users",
        "identifier": {"source": "profile_id", "destination": "external_id"},
        "fields": {"first_name": "first_name", "last_name": "last_name"},
    }

    def __init__(self, token: str = "test-token", rate_limit=(3000, 3.0)):
        super().__init__(token, rate_limit)
        self.users: dict[str, dict] = {}
        self.tracks_per_user: dict[str, int] = {}
        self.merged: dict[str, str] = {}  # merged-away external_id -> kept one

    def handle(self, method, path, headers, body):
        if not self.authorized(headers):
            return 401, {"message": "Invalid API key"}, {}
        payload = orjson.loads(body or b"{}")
        if method == "POST" and path == "/users/track":
            attributes = payload.get("attributes", [])
            if len(attributes) > 75:
                return 400, {"message": "Too many attribute objects: at most 75 per request"}, {}
            errors = []
            for index, item in enumerate(attributes):
                external_id = item.get("external_id")
                if not external_id:
                    errors.append(
                        {
                            "type": "'external_id' or 'braze_id' or 'user_alias' is required",
                            "input_array": "attributes",
                            "index": index,
                        }
                    )
                    continue
                with self.lock:
                    if item.get("_update_existing_only") and external_id not in self.users:
                        continue  # Braze skips it silently
                    self.users.setdefault(external_id, {}).update(item)
                    self.tracks_per_user[external_id] = self.tracks_per_user.get(external_id, 0) + 1
            answer = {"message": "success", "attributes_processed": len(attributes) - len(errors)}
            if errors:
                answer["errors"] = errors
            return 201, answer, {}
        if method == "POST" and path == "/users/merge":
            updates = payload.get("merge_updates", [])
            if not isinstance(updates, list) or len(updates) > 50:
                return 400, {"message": "merge_updates: a list of at most 50 objects"}, {}
            with self.lock:
                for update in updates:
                    gone = update.get("identifier_to_merge", {}).get("external_id")
                    keep = update.get("identifier_to_keep", {}).get("external_id")
                    if gone in self.users and keep in self.users:
                        merged = self.users.pop(gone)
                        for name, value in merged.items():  # the kept user's values win
                            self.users[keep].setdefault(name, value)
                        self.merged[gone] = keep
            return 202, {"message": "success"}, {}
        if method == "POST" and path == "/users/delete":
            with self.lock:
                for external_id in payload.get("external_ids", []):
                    self.users.pop(external_id, None)
            return 202, {"message": "success", "deleted": len(payload.get("external_ids", []))}, {}
        return 404, {"message": "not found"}, {}

    def held(self) -> dict[str, dict]:
        return {
            external_id.lower(): {k: v for k, v in user.items() if not k.startswith("_")}
            for external_id, user in self.users.items()
        }
