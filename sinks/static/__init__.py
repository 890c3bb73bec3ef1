"""The dashboard's page and script, served by the sink's API (package data)."""
