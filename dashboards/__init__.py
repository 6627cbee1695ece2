"""Grafana dashboards and provisioning, Prometheus config; a package only so that an installed distribution
carries them (the JSON and YAML files are its package data)."""
