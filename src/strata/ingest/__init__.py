"""The ingest half: plugin environments, plugin invocation, and (later) the Singer pipeline."""
