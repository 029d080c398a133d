package pecreds

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The configuration as stored, its defaults and its typed, cached storage helpers: read by
// handlers, the lifecycle, token refresh and delivery alike, so it lives apart from config's path.

const configStorageKey = "config"

// Defaults of DESIGN.md.
const (
	defaultProcessTTL      = 24 * time.Hour
	defaultRefreshFraction = 0.67
	defaultNotifyTimeout   = 10 * time.Second
	minNotifyTimeout       = time.Second
	maxNotifyTimeout       = time.Minute
	// refresh_fraction's bounds: below, a refresh storm; above, too little time to retry.
	minRefreshFraction = 0.5
	maxRefreshFraction = 0.9
	// grant_refresh_concurrency's default and bound.
	defaultGrantRefreshConcurrency = 8
	maxGrantRefreshConcurrency     = 64
)

// defaultErrorHealth maps the built-in error classes to a health. A report's class must be one of
// these or one the operator named in error_health_mapping: a typo must not fail a process.
var defaultErrorHealth = map[string]string{
	"auth_failed":             lifecycle.Broken,
	"credentials_expired":     lifecycle.Broken,
	"credentials_unavailable": lifecycle.Broken,
	"forbidden":               lifecycle.Failed,
	"unavailable":             lifecycle.Running,
}

// configEntry is the stored configuration. ErrorHealthMapping holds only the operator's
// overrides; effectiveErrorHealth adds the defaults.
type configEntry struct {
	KeepCredentials    string            `json:"keep_credentials"`
	GlobalRegistries   []string          `json:"global_registries"`
	ProcessTTL         time.Duration     `json:"process_ttl"`
	ProcessMaxTTL      time.Duration     `json:"process_max_ttl"`
	TaskManager        bool              `json:"task_manager"`
	ErrorHealthMapping map[string]string `json:"error_health_mapping"`
	RefreshFraction    float64           `json:"refresh_fraction"`
	// GrantRefreshConcurrency bounds the users' grant refreshes in the air at once (0 in a
	// config stored before it existed: the default).
	GrantRefreshConcurrency int           `json:"grant_refresh_concurrency,omitempty"`
	NotifyURL               string        `json:"notify_url"`
	NotifySecret            string        `json:"notify_secret"`
	NotifyTimeout           time.Duration `json:"notify_timeout"`
	// NotifyPreviousSecret signs alongside NotifySecret until NotifyPreviousUntil: a rotation's
	// overlap, so a receiver switches secrets without a gap.
	NotifyPreviousSecret string        `json:"notify_previous_secret"`
	NotifyPreviousUntil  time.Time     `json:"notify_previous_until"`
	NotifySecretOverlap  time.Duration `json:"notify_secret_overlap"`
	NotifyConcurrency    int           `json:"notify_concurrency"`
	NotifyMaxEvents      int           `json:"notify_max_events"`
}

func defaultConfig() *configEntry {
	return &configEntry{
		KeepCredentials:  lifecycle.KeepPersistent,
		GlobalRegistries: []string{},
		ProcessTTL:       defaultProcessTTL,
		TaskManager:      true,
		RefreshFraction:  defaultRefreshFraction,

		GrantRefreshConcurrency: defaultGrantRefreshConcurrency,
		NotifyTimeout:           defaultNotifyTimeout,

		NotifySecretOverlap: defaultNotifySecretOverlap,
		NotifyConcurrency:   defaultNotifyConcurrency,
		NotifyMaxEvents:     defaultNotifyMaxEvents,
	}
}

// effectiveErrorHealth is the mapping in force: the defaults, overridden by the stored classes.
func (c *configEntry) effectiveErrorHealth() map[string]string {
	m := make(map[string]string, len(defaultErrorHealth)+len(c.ErrorHealthMapping))
	for k, v := range defaultErrorHealth {
		m[k] = v
	}
	for k, v := range c.ErrorHealthMapping {
		m[k] = v
	}
	return m
}

// healthFor maps a known error class to a health; ok is false for a class nobody defined.
func (c *configEntry) healthFor(class string) (health string, ok bool) {
	health, ok = c.effectiveErrorHealth()[class]
	return health, ok
}

// errorClasses lists the known error classes, sorted, for messages and help.
func (c *configEntry) errorClasses() []string {
	classes := make([]string, 0, len(defaultErrorHealth)+len(c.ErrorHealthMapping))
	for k := range c.effectiveErrorHealth() {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	return classes
}

// getConfig returns the configuration in force, the defaults before any write. The answer is
// shared with the cache: callers must not modify it.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	b.cacheLock.RLock()
	cfg := b.config
	gen := b.cacheGen
	b.cacheLock.RUnlock()
	if cfg != nil {
		return cfg, nil
	}
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg = defaultConfig()
	if entry != nil {
		if err := entry.DecodeJSON(cfg); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	b.cacheLock.Lock()
	if b.cacheGen == gen {
		b.config = cfg
	}
	b.cacheLock.Unlock()
	return cfg, nil
}

func (b *backend) putConfig(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	entry, err := logical.StorageEntryJSON(configStorageKey, cfg)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	b.cacheLock.Lock()
	b.cacheGen++
	b.config = cfg
	b.cacheLock.Unlock()
	return nil
}

const (
	// A rotated-out signing secret keeps signing alongside the new one this long.
	defaultNotifySecretOverlap = 24 * time.Hour
	maxNotifySecretOverlap     = 30 * 24 * time.Hour
	defaultNotifyConcurrency   = 4
	maxNotifyConcurrency       = 32
	defaultNotifyMaxEvents     = 100_000
	maxNotifyMaxEvents         = 1_000_000 // about 150 MB of index at the most
)
