"""What the gateway did, for people and dashboards: Prometheus metrics, OpenTelemetry spans and
the live view `memproxy top` reads, all fed from each request's finished row."""
