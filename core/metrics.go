package core

import "github.com/prometheus/client_golang/prometheus"

// metrics carry counts and timings only: no label ever holds personal data.
type metrics struct {
	reg             *prometheus.Registry
	messages        *prometheus.CounterVec
	profilesCreated prometheus.Counter
	groupSeconds    prometheus.Histogram
	buildSeconds    prometheus.Histogram
	groupMessages   prometheus.Histogram
	merges          *prometheus.CounterVec
	replays         prometheus.Counter
	liveChanges     prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custody_ingest_messages_total", Help: "Messages ingested, by result: accepted, duplicate (a messageId seen within the window), suppressed (dropped because it names an identifier on the suppression list, e.g. a deleted person's).",
		}, []string{"result"}),
		profilesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custody_profiles_created_total", Help: "Profiles created by ingestion.",
		}),
		groupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_ingest_commit_seconds", Help: "Time from building one group to its durable commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_ingest_build_seconds", Help: "Time the committer spends building one group (resolve, seal), before the store writes it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		groupMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "custody_ingest_group_messages", Help: "Messages per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
	}
	m.merges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custody_identity_merges_total", Help: "Cluster merges by outcome (merged, refused by a rule).",
	}, []string{"outcome"})
	m.replays = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custody_identity_replays_total", Help: "Identity components re-clustered because evidence arrived out of order.",
	})
	m.liveChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custody_segment_live_changes_total", Help: "Segment memberships entered or exited by live updates after ingestion.",
	})
	reg.MustRegister(m.messages, m.profilesCreated, m.groupSeconds, m.buildSeconds, m.groupMessages, m.merges, m.replays, m.liveChanges)
	return m
}
