package core

import "github.com/prometheus/client_golang/prometheus"

// metrics carry counts and timings only: no label ever holds personal data.
type metrics struct {
	reg             *prometheus.Registry
	messages        *prometheus.CounterVec
	profilesCreated prometheus.Counter
	groupSeconds    prometheus.Histogram
	groupMessages   prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_ingest_messages_total", Help: "Messages ingested, by result (accepted, duplicate).",
		}, []string{"result"}),
		profilesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custody_profiles_created_total", Help: "Profiles created by ingestion.",
		}),
		groupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_ingest_commit_seconds", Help: "Time to resolve, seal and durably commit one group.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		groupMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_ingest_group_messages", Help: "Messages per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
	}
	reg.MustRegister(m.messages, m.profilesCreated, m.groupSeconds, m.groupMessages)
	return m
}
