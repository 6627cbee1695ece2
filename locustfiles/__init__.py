"""The workloads, one locustfile per module; a package only so that an installed distribution carries them."""
