"""Data model, layer registry and ingest: the base every other context builds on."""
