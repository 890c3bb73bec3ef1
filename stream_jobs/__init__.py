"""The Faust app and its jobs (first exposures, variant switches, assignment checks, attribution)."""
