// Package systemd holds dcepd's systemd unit (dcepd.service) and the
// system user it runs as (dcepd.sysusers); its test verifies the unit with
// systemd-analyze where that is installed and checks its hardening fields
// everywhere.
package systemd
