package core

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custody-cdp/custody/core/store"
)

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

func newMetrics(reg *prometheus.Registry, st *store.Store) *metrics {
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
	reg.MustRegister(m.messages, m.profilesCreated, m.groupSeconds, m.buildSeconds, m.groupMessages, m.merges, m.replays, m.liveChanges, newStoreCollector(st))
	return m
}

// storeCollector reports the store's shape and cache counters at each
// scrape (store.Stats): what an operator sizes the caches by.
type storeCollector struct {
	st                 *store.Store
	tables, index, hit *prometheus.Desc
}

func newStoreCollector(st *store.Store) storeCollector {
	return storeCollector{
		st:     st,
		tables: prometheus.NewDesc("custody_store_tables", "Tables in the store's LSM tree.", nil, nil),
		index: prometheus.NewDesc("custody_store_index_bytes",
			"Bytes of every table's index, bloom filters included. Above the index cache's size, point reads re-read and decrypt indexes.", nil, nil),
		hit: prometheus.NewDesc("custody_store_cache_requests_total",
			"Reads of the store's block and index caches, by cache and result (hit, miss).", []string{"cache", "result"}, nil),
	}
}

func (s storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.tables
	ch <- s.index
	ch <- s.hit
}

func (s storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.st.Stats()
	ch <- prometheus.MustNewConstMetric(s.tables, prometheus.GaugeValue, float64(st.Tables))
	ch <- prometheus.MustNewConstMetric(s.index, prometheus.GaugeValue, float64(st.IndexBytes))
	for _, c := range []struct {
		cache, result string
		n             uint64
	}{{"block", "hit", st.BlockHits}, {"block", "miss", st.BlockMisses}, {"index", "hit", st.IndexHits}, {"index", "miss", st.IndexMisses}} {
		ch <- prometheus.MustNewConstMetric(s.hit, prometheus.CounterValue, float64(c.n), c.cache, c.result)
	}
}
