"""Dagster keeps its runs and events in PostgreSQL with deploy/dagster.postgres.yaml: a real
materialization of one of our assets is recorded there and read back by a second instance, as
the webserver and the daemon would."""

import shutil

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, materialize

from cdp.core.config import PROJECT_ROOT
from orchestration.ingest.enrichment import FIRMOGRAPHICS, company_firmographics
from orchestration.resources import WarehouseResource
from tests.conftest import PG, pg_answers, pg_connect, pg_database

DATABASE = "cdp_dagster_test"

pytestmark = pytest.mark.skipif(
    not pg_answers(), reason=f"no PostgreSQL answers at {PG['host']}:{PG['port']}"
)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    with pg_database(DATABASE):
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        url = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{DATABASE}"
        monkeypatch.setenv("DAGSTER_PG_URL", url)
        monkeypatch.delenv("CDP_FIRMOGRAPHICS_URL", raising=False)  # enrichment skips: fast
        yield home


def test_runs_and_materializations_are_stored_in_postgres(dagster_home, tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"), landing_dir=str(tmp_path))
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize(
            [company_firmographics()], resources={"warehouse": warehouse}, instance=instance
        )
        assert result.success
    # a second process (the webserver) sees the run and what it materialized
    with DagsterInstance.from_config(str(dagster_home)) as reader:
        run = reader.get_run_by_id(result.run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        event = reader.get_latest_materialization_event(FIRMOGRAPHICS)
        assert event is not None and event.run_id == result.run_id
        assert event.asset_materialization.asset_key == AssetKey(
            ["enrichment", "company_firmographics"]
        )
    with pg_connect(DATABASE) as con, con.cursor() as cur:
        cur.execute("select count(*) from runs where run_id = %s", [result.run_id])
        assert cur.fetchone() == (1,)
        cur.execute("select count(*) from event_logs where run_id = %s", [result.run_id])
        assert cur.fetchone()[0] > 5
