"""Domain privacy: the erasure job (destinations, warehouse, rebuild, verify) and the sensor
that starts it for open requests."""

from dagster import Definitions

from orchestration.privacy.erasure import erasure_request_sensor, privacy_erasure_job


def definitions() -> Definitions:
    return Definitions(jobs=[privacy_erasure_job], sensors=[erasure_request_sensor])
