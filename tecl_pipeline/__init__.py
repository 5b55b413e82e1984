"""tecl-pipeline: trade "TECL For The Long Term" once per NYSE session, with Dagster."""
