"""The one Definitions object of the code location, merged from the domains. Nothing happens on
import: Dagster (or `defs()`) builds it, preparing the dbt manifest first."""

from dagster import Definitions, definitions, in_process_executor

from orchestration import activation, ingest, intelligence, operations, privacy, transform
from orchestration.project import prepared_dbt_project
from orchestration.resources import build_resources, export_locations
from orchestration.transform.dbt import dbt_models


@definitions
def defs() -> Definitions:
    export_locations()
    project = prepared_dbt_project()
    dbt = dbt_models(project)  # where the other domains look up the models they read
    others = Definitions.merge(
        ingest.definitions(project.manifest_path),
        intelligence.definitions(dbt),
        activation.definitions(dbt),
        privacy.definitions(),
        operations.definitions(),
    )
    return Definitions.merge(
        others,
        transform.definitions(project, dbt, others),
        Definitions(
            resources=build_resources(project),
            # DuckDB allows one writing process: steps run one after another in the run's process.
            executor=in_process_executor,
        ),
    )
