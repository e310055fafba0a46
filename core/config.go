package core

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/custody-cdp/custody/identity"
	"github.com/custody-cdp/custody/privacy"
)

// ConfigFile is the name of the configuration file in the data directory.
const ConfigFile = "custody.yaml"

// Config is everything Custody needs to run. The zero value is not usable:
// start from DefaultConfig, then LoadConfigFile, then ApplyEnv.
type Config struct {
	// DataDir holds master.key, custody.yaml, store/, vault/ and the
	// admin socket. Not read from the file (the file lives in it).
	DataDir string `yaml:"-"`
	// MasterKeyFile overrides <data>/master.key.
	MasterKeyFile string `yaml:"master_key_file"`
	// MasterKeyHex and Passphrase come only from the environment
	// (CUSTODY_MASTER_KEY, CUSTODY_PASSPHRASE): secrets never sit in the file.
	MasterKeyHex string `yaml:"-"`
	Passphrase   string `yaml:"-"`

	Server   ServerConfig   `yaml:"server"`
	Identity identity.Rules `yaml:"identity"`
	Policies PoliciesConfig `yaml:"policies"`
	Consent  ConsentConfig  `yaml:"consent"`
	Segments SegmentsConfig `yaml:"segments"`
	Privacy  PrivacyConfig  `yaml:"privacy"`
	// Destinations are where segment exports go, by name.
	Destinations map[string]DestinationConfig `yaml:"destinations"`
	Ingest       IngestConfig                 `yaml:"ingest"`
	Store        StoreConfig                  `yaml:"store"`
	Log          LogConfig                    `yaml:"log"`

	// Personalize configures GET /v1/personalize (personalize.go).
	Personalize PersonalizeConfig `yaml:"personalize"`
}

// ServerConfig configures `custody serve`.
type ServerConfig struct {
	Addr              string   `yaml:"addr"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`
	// GCPercent and MemoryLimitMiB tune the Go runtime of `custody serve`:
	// a higher GC percent spends less CPU on collection, and the soft
	// memory limit makes the collector work harder only near it.
	GCPercent      int `yaml:"gc_percent"`
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// IngestConfig configures the ingestion pipeline.
type IngestConfig struct {
	// DedupWindow is how long a messageId is remembered for de-duplication.
	DedupWindow Duration `yaml:"dedup_window"`
	// GroupMaxMessages and GroupMaxBytes bound one group commit.
	GroupMaxMessages int `yaml:"group_max_messages"`
	GroupMaxBytes    int `yaml:"group_max_bytes"`
	// IdentifierCacheSize is how many identifier -> profile mappings the
	// committer keeps in memory.
	IdentifierCacheSize int `yaml:"identifier_cache_size"`
	// DedupFilterCapacity sizes the in-memory filters of identifier index
	// entries and observations
	// (10 bits each); it grows by itself when outgrown.
	DedupFilterCapacity int `yaml:"dedup_filter_capacity"`
}

// StoreConfig sizes the embedded stores, in MiB.
type StoreConfig struct {
	MemTableMiB   int `yaml:"memtable_mib"`
	BlockCacheMiB int `yaml:"block_cache_mib"`
	IndexCacheMiB int `yaml:"index_cache_mib"`
	DEKCacheSize  int `yaml:"dek_cache_size"`
	// TableMiB, when set, sizes every table compactions build (0:
	// Badger's, doubling per level; store.Options.TableSize).
	TableMiB int `yaml:"table_mib"`
}

// PoliciesConfig configures the policy gate.
type PoliciesConfig struct {
	// Dir overrides the embedded default policies with a directory of
	// .rego files (flag --policies).
	Dir string `yaml:"dir"`
	// CacheSize bounds the decision cache.
	CacheSize int `yaml:"cache_size"`
}

// ConsentConfig configures consent signals.
type ConsentConfig struct {
	// Categories maps a consent manager's category ids, as they arrive in
	// context.consent.categoryPreferences, to purposes.
	Categories privacy.CategoryMap `yaml:"categories"`
}

// PrivacyConfig configures privacy requests.
type PrivacyConfig struct {
	// RotationWindow is how long after a deletion the KEK rotation that
	// makes old copies of the person's keys unreadable may wait. 0 (the
	// default) rotates within the deletion; a window lets one rotation
	// cover every deletion made in it, which matters in large stores where
	// a rotation re-wraps every live key. `custody keys rotate` runs it now.
	RotationWindow Duration `yaml:"rotation_window"`
}

// SegmentsConfig configures segment upkeep.
type SegmentsConfig struct {
	// RefreshInterval is how often `custody serve` re-evaluates every
	// segment (memberships entered/exited, time-based conditions); 0 turns
	// the sweep off.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// LiveDelay is how long the live membership updater gathers the people
	// touched by ingestion before re-evaluating them (core/live.go); 0
	// turns live updates off (the sweep still runs).
	LiveDelay Duration `yaml:"live_delay"`
	// Hygiene sets when `custody segment list` warns about a segment
	// (hygiene.go).
	Hygiene HygieneConfig `yaml:"hygiene"`
}

// DestinationConfig is an export destination: a file destination writes
// CSV or JSON Lines into Dir (which must be outside the data directory: an
// export is plaintext personal data handed to a recipient).
type DestinationConfig struct {
	// Preset names a channel preset (preset.go, docs/activation.md): it
	// supplies kind, purpose and fields, which the keys below may only
	// narrow.
	Preset string   `yaml:"preset"`
	Kind   string   `yaml:"kind"`   // email, ads, analytics, support, file, webhook (docs/policies.md)
	Format string   `yaml:"format"` // csv or jsonl
	Dir    string   `yaml:"dir"`
	Region string   `yaml:"region"`
	Fields []string `yaml:"fields"` // what the destination may receive; the policy may allow fewer
	// Purpose, when set, is what the destination uses the data for: every
	// exported person must be allowed it as well as the segment's purpose.
	Purpose string `yaml:"purpose"`
	// Webhook destinations POST batches of rows as JSON to URL, signed
	// with HMAC-SHA256 under the secret in the environment variable
	// SecretEnv (X-Custody-Signature: sha256=<hex>), retried with backoff.
	URL       string `yaml:"url"`
	SecretEnv string `yaml:"secret_env"`
	BatchSize int    `yaml:"batch_size"`
}

// LogConfig configures structured logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// DefaultConfig returns the documented defaults (docs/operations.md).
func DefaultConfig() Config {
	return Config{
		DataDir: "./custody-data",
		Server: ServerConfig{
			Addr:              "127.0.0.1:8700",
			ReadHeaderTimeout: Duration(10 * time.Second),
			ReadTimeout:       Duration(30 * time.Second),
			WriteTimeout:      Duration(60 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			ShutdownTimeout:   Duration(20 * time.Second),
			GCPercent:         300,
			MemoryLimitMiB:    3072,
		},
		Ingest: IngestConfig{
			DedupWindow:         Duration(24 * time.Hour),
			GroupMaxMessages:    10000,
			GroupMaxBytes:       4 << 20,
			IdentifierCacheSize: 1 << 20,
			DedupFilterCapacity: 8 << 20,
		},
		Identity: identity.DefaultRules(),
		Policies: PoliciesConfig{CacheSize: 4096},
		Consent:  ConsentConfig{Categories: privacy.DefaultCategories()},
		Segments: SegmentsConfig{RefreshInterval: Duration(15 * time.Minute), LiveDelay: Duration(time.Second), Hygiene: DefaultHygiene()},
		Store:    StoreConfig{MemTableMiB: 64, BlockCacheMiB: 256, IndexCacheMiB: 128, DEKCacheSize: 200000},
		Log:      LogConfig{Level: "info", Format: "text"},

		Personalize: DefaultPersonalize(),
	}
}

// ConfigError names the key that is wrong.
type ConfigError struct {
	Key    string
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Reason) }
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// LoadConfigFile overlays the YAML file at path on c. A missing file is not
// an error when optional is true. Unknown keys are errors naming the key.
func (c *Config) LoadConfigFile(path string, optional bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			return nil // empty file
		}
		return fmt.Errorf("config: %s: %w: %s", path, ErrInvalidConfig, describeYAMLError(b, err))
	}
	return nil
}

var errEOF = errors.New("EOF")

// ApplyEnv reads secrets and overrides from the environment.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv("CUSTODY_MASTER_KEY"); v != "" {
		c.MasterKeyHex = v
	}
	if v := getenv("CUSTODY_PASSPHRASE"); v != "" {
		c.Passphrase = v
	}
	if v := getenv("CUSTODY_ADDR"); v != "" {
		c.Server.Addr = v
	}
	if v := getenv("CUSTODY_LOG_LEVEL"); v != "" {
		c.Log.Level = v
	}
}

// Validate checks every setting and names the first wrong key.
func (c *Config) Validate() error {
	bad := func(k, r string) error { return &ConfigError{Key: k, Reason: r} }
	if c.DataDir == "" {
		return bad("data", "must not be empty")
	}
	if c.Server.Addr == "" {
		return bad("server.addr", "must not be empty")
	}
	// Checked here so that a typo stops every command, not only serve.
	if _, port, err := net.SplitHostPort(c.Server.Addr); err != nil || port == "" {
		return bad("server.addr", "must be host:port, such as 127.0.0.1:8700 or :8700")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return bad("server.addr", "the port must be a number from 0 to 65535")
	}
	for k, d := range map[string]Duration{
		"server.read_header_timeout": c.Server.ReadHeaderTimeout, "server.read_timeout": c.Server.ReadTimeout,
		"server.write_timeout": c.Server.WriteTimeout, "server.idle_timeout": c.Server.IdleTimeout,
		"server.shutdown_timeout": c.Server.ShutdownTimeout, "ingest.dedup_window": c.Ingest.DedupWindow,
	} {
		if d <= 0 {
			return bad(k, "must be a positive duration such as 30s, 10m or 7d")
		}
	}
	if c.Ingest.GroupMaxMessages < 1 || c.Ingest.GroupMaxMessages > 50000 {
		return bad("ingest.group_max_messages", "must be between 1 and 50000")
	}
	if c.Ingest.GroupMaxBytes < 512<<10 || c.Ingest.GroupMaxBytes > 8<<20 {
		return bad("ingest.group_max_bytes", "must be between 524288 and 8388608")
	}
	if c.Server.GCPercent < 50 || c.Server.GCPercent > 1000 {
		return bad("server.gc_percent", "must be between 50 and 1000")
	}
	if c.Server.MemoryLimitMiB < 256 {
		return bad("server.memory_limit_mib", "must be at least 256")
	}
	if err := c.Identity.Validate(); err != nil {
		return &ConfigError{Key: strings.SplitN(err.Error(), ":", 2)[0], Reason: strings.TrimSpace(strings.SplitN(err.Error(), ":", 2)[1])}
	}
	if c.Policies.CacheSize < 1 {
		return bad("policies.cache_size", "must be at least 1")
	}
	if c.Policies.Dir != "" {
		// The path is named: it is configuration, never personal data.
		switch st, err := os.Stat(c.Policies.Dir); {
		case err != nil:
			return bad("policies.dir", fmt.Sprintf("%s: %v; must be a directory of .rego files", c.Policies.Dir, errors.Unwrap(err)))
		case !st.IsDir():
			return bad("policies.dir", fmt.Sprintf("%s is not a directory; must be a directory of .rego files", c.Policies.Dir))
		}
	}
	if c.Privacy.RotationWindow < 0 || c.Privacy.RotationWindow.D() > 30*24*time.Hour {
		return bad("privacy.rotation_window", "must be between 0 (rotate within each deletion) and 30d")
	}
	if c.Segments.RefreshInterval < 0 || (c.Segments.RefreshInterval > 0 && c.Segments.RefreshInterval.D() < time.Minute) {
		return bad("segments.refresh_interval", "must be 0 (off) or at least 1m")
	}
	if c.Segments.LiveDelay < 0 || c.Segments.LiveDelay.D() > time.Hour {
		return bad("segments.live_delay", "must be between 0 (off) and 1h")
	}
	if err := c.Segments.Hygiene.validate(); err != nil {
		return err
	}
	if err := c.Personalize.validate(); err != nil {
		return err
	}
	for name, d := range c.Destinations {
		k := "destinations." + name
		d, err := d.Resolve()
		if err != nil {
			return bad(k+".preset", err.Error())
		}
		if d.Purpose != "" && !purposeShaped(d.Purpose) {
			return bad(k+".purpose", "must be a purpose key such as marketing.communications.email")
		}
		switch d.Kind {
		case "email", "ads", "analytics", "support", "file", "webhook":
		default:
			return bad(k+".kind", "must be email, ads, analytics, support, file or webhook")
		}
		if d.URL != "" {
			if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return bad(k+".url", "must be an http(s) URL")
			}
			if d.SecretEnv == "" {
				return bad(k+".secret_env", "name the environment variable holding the signing secret")
			}
			if len(d.Fields) == 0 {
				return bad(k+".fields", "list the fields the destination may receive")
			}
			continue
		}
		if d.Format != "csv" && d.Format != "jsonl" {
			return bad(k+".format", "must be csv or jsonl (or give url for a webhook)")
		}
		if d.Dir == "" {
			return bad(k+".dir", "required: a directory outside the data directory")
		}
		if abs, err := filepath.Abs(d.Dir); err == nil {
			if data, err := filepath.Abs(c.DataDir); err == nil && (abs == data || strings.HasPrefix(abs, data+string(filepath.Separator))) {
				return bad(k+".dir", "must be outside the data directory (exports are plaintext)")
			}
		}
		if len(d.Fields) == 0 {
			return bad(k+".fields", "list the fields the destination may receive")
		}
	}
	if c.Ingest.IdentifierCacheSize < 1 {
		return bad("ingest.identifier_cache_size", "must be at least 1")
	}
	if c.Ingest.DedupFilterCapacity < 1024 {
		return bad("ingest.dedup_filter_capacity", "must be at least 1024")
	}
	if c.Store.MemTableMiB < 8 || c.Store.MemTableMiB > 1024 {
		return bad("store.memtable_mib", "must be between 8 and 1024")
	}
	if c.Store.TableMiB < 0 || c.Store.TableMiB > 256 {
		return bad("store.table_mib", "must be between 0 (Badger's sizes) and 256")
	}
	if c.Store.BlockCacheMiB < 8 {
		return bad("store.block_cache_mib", "must be at least 8 (Badger needs a block cache when encrypted)")
	}
	if c.Store.IndexCacheMiB < 8 {
		return bad("store.index_cache_mib", "must be at least 8 (Badger needs an index cache when encrypted)")
	}
	if c.Store.DEKCacheSize < 1 {
		return bad("store.dek_cache_size", "must be at least 1")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be one of debug, info, warn, error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be text or json")
	}
	if c.MasterKeyHex != "" && c.Passphrase != "" {
		return bad("CUSTODY_MASTER_KEY", "set either CUSTODY_MASTER_KEY or CUSTODY_PASSPHRASE, not both")
	}
	return nil
}

// Paths inside the data directory.
func (c *Config) storeDir() string { return filepath.Join(c.DataDir, "store") }
func (c *Config) vaultDir() string { return filepath.Join(c.DataDir, "vault") }
func (c *Config) saltFile() string { return filepath.Join(c.DataDir, "master.salt") }
func (c *Config) masterFile() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// SocketPath is the owner-only unix socket of a running server, through
// which the CLI reaches a store that `custody serve` holds.
func (c *Config) SocketPath() string { return filepath.Join(c.DataDir, "custody.sock") }

// Duration is a time.Duration that also reads days ("7d").
type Duration time.Duration

// ParseDuration reads Go durations plus a "d" suffix for days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		// NaN, Inf and more than ~292 years do not fit a time.Duration
		// (the conversion would silently give a negative one).
		if err != nil || math.IsNaN(n) || math.Abs(n*float64(24*time.Hour)) >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v (use e.g. 30s, 10m, 7d)", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var lineRe = regexp.MustCompile(`line (\d+): `)

// describeYAMLError adds the dotted key path to yaml's "line N: ..." errors,
// so that "line 2: cannot unmarshal !!str into int" names
// "ingest.group_max_messages".
func describeYAMLError(src []byte, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return msg
	}
	return lineRe.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(lineRe.FindStringSubmatch(m)[1])
		if k := keyAtLine(&root, n, ""); k != "" {
			return m + k + ": "
		}
		return m
	})
}

func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			path := key.Value
			if prefix != "" {
				path = prefix + "." + key.Value
			}
			if key.Line == line {
				return path
			}
			if k := keyAtLine(val, line, path); k != "" {
				return k
			}
		}
	}
	return ""
}
