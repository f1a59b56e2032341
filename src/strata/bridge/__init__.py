"""The bridge between ingest and features: target-strata and the streams it defines."""
