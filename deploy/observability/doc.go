// Package observability holds dcep's Grafana dashboard
// (grafana-dashboard.json) and Prometheus alerting rules (alerts.yml, with
// their promtool unit tests in alerts_test.yml). Its tests run promtool on
// both, and scrape a real node to check that every metric and label they use
// exists.
package observability
