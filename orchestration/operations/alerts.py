"""An alert when a run fails: `run_failure_alert` posts a Slack-compatible message (job,
failed steps, the error, a link to the run) to the webhook in CDP_ALERT_WEBHOOK_URL; without it,
the failure is only logged."""

from __future__ import annotations

import json
import os

import requests
from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

ALERT_URL_ENV = "CDP_ALERT_WEBHOOK_URL"
UI_URL_ENV = "CDP_DAGSTER_URL"  # where people open the Dagster UI, for the link in an alert


def failure_message(context: RunFailureSensorContext) -> dict:
    """The alert: Slack's incoming-webhook format (`text` for notifications and clients without
    blocks, `blocks` for the message), which Teams and Mattermost bridges also accept."""
    run = context.dagster_run
    steps = [
        (event.step_key or "?", event.event_specific_data.error.message.strip().splitlines()[0])
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    reason = steps[0][1] if steps else (context.failure_event.message or "the run failed")
    base = os.environ.get(UI_URL_ENV, "http://127.0.0.1:3000").rstrip("/")
    link = f"{base}/runs/{run.run_id}"
    failed = ", ".join(step for step, _ in steps) or "(before any step)"
    text = f"CDP run failed: job {run.job_name}, step {failed}: {reason}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f":red_circle: *CDP run failed*: {reason}"},
                "fields": [
                    {"type": "mrkdwn", "text": f"*Job*\n{run.job_name}"},
                    {"type": "mrkdwn", "text": f"*Failed step*\n{failed}"},
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Open the run>"}},
        ],
        "job": run.job_name,
        "failed_steps": [step for step, _ in steps],
        "message": reason,
        "run_url": link,
    }


@run_failure_sensor(
    name="run_failure_alert",
    description=f"Posts every failed run to the webhook in {ALERT_URL_ENV} (Slack-compatible).",
    default_status=DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
)
def run_failure_alert(context: RunFailureSensorContext) -> None:
    url = os.environ.get(ALERT_URL_ENV)
    message = failure_message(context)
    if not url:
        context.log.warning(f"{message['text']} (set {ALERT_URL_ENV} to be alerted)")
        return
    # The URL is a secret (Slack's carries the token): never in a log line or an error.
    try:
        answer = requests.post(
            url, data=json.dumps(message), timeout=10, headers={"Content-Type": "application/json"}
        )
    except requests.RequestException as exc:
        raise RuntimeError(
            f"the alert webhook could not be reached: {type(exc).__name__}"
        ) from None
    if answer.status_code >= 300:
        raise RuntimeError(f"the alert webhook answered HTTP {answer.status_code}")
