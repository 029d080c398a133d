package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

func (c *configEntry) responseData(now time.Time) map[string]any {
	return map[string]any{
		"keep_credentials":     c.KeepCredentials,
		"global_registries":    append([]string{}, c.GlobalRegistries...),
		"process_ttl":          formatDuration(c.ProcessTTL),
		"process_max_ttl":      formatDuration(c.ProcessMaxTTL),
		"task_manager":         c.TaskManager,
		"error_health_mapping": c.effectiveErrorHealth(),
		"refresh_fraction":     c.RefreshFraction,

		"grant_refresh_concurrency": c.grantRefreshConcurrency(),
		"notify_url":                c.NotifyURL,
		"notify_timeout":            formatDuration(c.NotifyTimeout),

		"notify_secret_overlap":        formatDuration(c.NotifySecretOverlap),
		"notify_concurrency":           c.NotifyConcurrency,
		"notify_max_events":            c.NotifyMaxEvents,
		"notify_previous_secret_until": c.previousSecretUntil(now),
	}
}

// formatDuration is how every duration reads (config, notify/status): a Go duration without its
// zero tail ("24h", "90m", "10s", "0s"), the form writes accept. (Lease-like ttl and
// rotation_period stay integer seconds, as Vault and its agent read them.)
func formatDuration(d time.Duration) string {
	s := d.Round(time.Second).String() // "24h0m0s", "1h30m0s", "1m0s", "10s", "0s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:        "config",
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix},
		Fields:         configFields,
		ExistenceCheck: b.pathConfigExistenceCheck,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "configuration"},
				Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: configResponseFields}}},
			},
			logical.CreateOperation: configWriteOperation(b),
			logical.UpdateOperation: configWriteOperation(b),
		},
		HelpSynopsis:    configHelpSynopsis,
		HelpDescription: configHelpDescription,
	}}
}

func configWriteOperation(b *backend) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     b.pathConfigWrite,
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
		Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: configResponseFields}}},
	}
}

// The config always exists: it reads as the defaults before any write.
func (b *backend) pathConfigExistenceCheck(context.Context, *logical.Request, *framework.FieldData) (bool, error) {
	return true, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: cfg.responseData(b.deps.now())}
	if w := cfg.oldFormSecretWarning(b.deps.now()); w != "" {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.configLock.Lock()
	defer b.configLock.Unlock()

	current, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg := *current
	if err := applyConfigFields(&cfg, d, b.deps.now()); err != nil {
		return badRequest(err)
	}
	if err := cfg.validate(b.System().MaxLeaseTTL()); err != nil {
		return badRequest(err)
	}
	if err := b.putConfig(ctx, req.Storage, &cfg); err != nil {
		return nil, err
	}
	b.notifier.poke() // a notify_url set again delivers what waited
	if cfg.NotifyURL != "" && cfg.NotifyURL != current.NotifyURL {
		// A new receiver: what waits out a backoff from failures at the old one goes now.
		if _, err := b.notifier.hurry(ctx, req.Storage); err != nil {
			b.Logger().Warn("pending notifications wait for their backoff", "error", err)
		}
	}
	b.grants.reopenLanes() // a grant_refresh_concurrency raised takes effect at once
	resp := &logical.Response{Data: cfg.responseData(b.deps.now())}
	if w := cfg.oldFormSecretWarning(b.deps.now()); w != "" {
		resp.AddWarning(w)
	}
	if _, given := d.GetOk("error_health_mapping"); given {
		for _, class := range cfg.errorClasses() {
			if _, builtIn := defaultErrorHealth[class]; !builtIn {
				resp.AddWarning(fmt.Sprintf("error_health_mapping: %q is not a built-in error class; it is accepted as a new class that reports may name", class))
			}
		}
	}
	for _, name := range cfg.GlobalRegistries {
		reg, err := b.getRegistry(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if reg == nil {
			resp.AddWarning(fmt.Sprintf("global registry %q does not exist yet; resolution skips it until it is written", name))
		}
	}
	return resp, nil
}

// applyConfigFields copies the given fields onto cfg; a field not given keeps its value.
func applyConfigFields(cfg *configEntry, d *framework.FieldData, now time.Time) error {
	if v, ok := d.GetOk("keep_credentials"); ok {
		cfg.KeepCredentials = v.(string)
	}
	if v, ok := d.GetOk("global_registries"); ok {
		cfg.GlobalRegistries = v.([]string)
	}
	if v, ok := d.GetOk("process_ttl"); ok {
		cfg.ProcessTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("process_max_ttl"); ok {
		cfg.ProcessMaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("task_manager"); ok {
		cfg.TaskManager = v.(bool)
	}
	if v, ok := d.GetOk("refresh_fraction"); ok {
		cfg.RefreshFraction = v.(float64)
	}
	if v, ok := d.GetOk("grant_refresh_concurrency"); ok {
		if n := v.(int); n < 1 || n > maxGrantRefreshConcurrency {
			return fmt.Errorf("grant_refresh_concurrency must be between 1 and %d; %d is not", maxGrantRefreshConcurrency, n)
		}
		cfg.GrantRefreshConcurrency = v.(int)
	}
	if err := applyNotifyFields(cfg, d, now); err != nil {
		return err
	}
	if v, ok := d.GetOk("error_health_mapping"); ok {
		m, err := parseErrorHealthMapping(v.(map[string]any))
		if err != nil {
			return err
		}
		cfg.ErrorHealthMapping = m
	}
	return nil
}

func parseErrorHealthMapping(raw map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(raw))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, class := range keys {
		if err := credential.ValidateName("error_health_mapping: error class", class); err != nil {
			return nil, err // error classes follow the name rule
		}
		health, ok := raw[class].(string)
		if !ok || !isHealth(health) {
			return nil, fmt.Errorf("error_health_mapping: class %q maps to %v; the health must be running, broken or failed", class, raw[class])
		}
		out[class] = health
	}
	return out, nil
}

func isHealth(h string) bool {
	return h == lifecycle.Running || h == lifecycle.Broken || h == lifecycle.Failed
}

// validate checks the whole configuration; mountMax is the mount's maximum lease TTL.
func (c *configEntry) validate(mountMax time.Duration) error {
	switch c.KeepCredentials {
	case lifecycle.KeepPersistent, lifecycle.KeepTransient, lifecycle.KeepNone:
	default:
		return fmt.Errorf("keep_credentials: %q is not a mode: use persistent, transient or none", c.KeepCredentials)
	}
	seen := map[string]bool{}
	for i, name := range c.GlobalRegistries {
		if err := credential.ValidateName(fmt.Sprintf("global_registries[%d]", i), name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("global_registries: %q is listed twice", name)
		}
		seen[name] = true
	}
	if c.ProcessTTL <= 0 {
		return errors.New("process_ttl must be positive")
	}
	if c.ProcessMaxTTL < 0 {
		return errors.New("process_max_ttl must not be negative (0 means the mount's maximum)")
	}
	if mountMax > 0 && c.ProcessMaxTTL > mountMax {
		return fmt.Errorf("process_max_ttl (%s) must not exceed the mount's max lease TTL (%s); raise that with vault secrets tune -max-lease-ttl", c.ProcessMaxTTL, mountMax)
	}
	if c.ProcessMaxTTL > 0 && c.ProcessTTL > c.ProcessMaxTTL {
		return fmt.Errorf("process_ttl (%s) must not exceed process_max_ttl (%s)", c.ProcessTTL, c.ProcessMaxTTL)
	}
	if c.ProcessMaxTTL == 0 && mountMax > 0 && c.ProcessTTL > mountMax {
		return fmt.Errorf("process_ttl (%s) must not exceed the mount's max lease TTL (%s); raise that with vault secrets tune -max-lease-ttl", c.ProcessTTL, mountMax)
	}
	if !(c.RefreshFraction >= minRefreshFraction && c.RefreshFraction <= maxRefreshFraction) {
		return fmt.Errorf("refresh_fraction must be between %v and %v; %v is not", minRefreshFraction, maxRefreshFraction, c.RefreshFraction)
	}
	return c.validateNotify()
}

// grantRefreshConcurrency is the value in force: the default for a config stored before the field.
func (c *configEntry) grantRefreshConcurrency() int {
	if c.GrantRefreshConcurrency == 0 {
		return defaultGrantRefreshConcurrency
	}
	return c.GrantRefreshConcurrency
}
