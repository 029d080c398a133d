package pecreds

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The config fields of the Task Manager webhook: where, how signed (and how a secret is replaced
// without a gap), how fast, how much may wait.

// setNotifySecret makes secret the signing secret; the one it replaces keeps signing alongside
// for the overlap (if it is one that can sign). Clearing the secret clears both.
func (c *configEntry) setNotifySecret(secret string, now time.Time) {
	if secret == c.NotifySecret {
		return
	}
	_, err := outbox.ParseSecret("notify_secret", c.NotifySecret)
	if secret != "" && err == nil && c.NotifySecretOverlap > 0 {
		c.NotifyPreviousSecret, c.NotifyPreviousUntil = c.NotifySecret, now.Add(c.NotifySecretOverlap).UTC()
	} else {
		c.NotifyPreviousSecret, c.NotifyPreviousUntil = "", time.Time{}
	}
	c.NotifySecret = secret
}

// setNotifySecretOverlap sets the overlap; a running one ends no later than the new overlap
// allows (0 ends it now), and a previous secret past its end is wiped.
func (c *configEntry) setNotifySecretOverlap(overlap time.Duration, now time.Time) {
	c.NotifySecretOverlap = overlap
	if end := now.Add(overlap).UTC(); c.NotifyPreviousUntil.After(end) {
		c.NotifyPreviousUntil = end
	}
	if !now.Before(c.NotifyPreviousUntil) {
		c.NotifyPreviousSecret, c.NotifyPreviousUntil = "", time.Time{}
	}
}

// oldFormSecretWarning warns while deliveries are paused by a secret of the old form.
func (c *configEntry) oldFormSecretWarning(now time.Time) string {
	if c.NotifyURL == "" {
		return ""
	}
	if _, err := c.signingKeys(now); err != nil {
		return err.Error()
	}
	return ""
}

// previousSecretUntil is when the previous signing secret stops signing: "" when none does.
func (c *configEntry) previousSecretUntil(now time.Time) string {
	if c.NotifyPreviousSecret == "" || !now.Before(c.NotifyPreviousUntil) {
		return ""
	}
	return formatTime(c.NotifyPreviousUntil)
}

// applyNotifyFields copies the given webhook fields onto cfg.
func applyNotifyFields(cfg *configEntry, d *framework.FieldData, now time.Time) error {
	if v, ok := d.GetOk("notify_url"); ok {
		cfg.NotifyURL = v.(string)
	}
	if v, ok := d.GetOk("notify_secret_overlap"); ok {
		cfg.setNotifySecretOverlap(time.Duration(v.(int))*time.Second, now)
	}
	if v, ok := d.GetOk("notify_secret"); ok { // after the overlap: a write giving both uses the new one
		if v.(string) != "" {
			if _, err := outbox.ParseSecret("notify_secret", v.(string)); err != nil {
				return err
			}
		}
		cfg.setNotifySecret(v.(string), now)
	}
	if v, ok := d.GetOk("notify_concurrency"); ok {
		cfg.NotifyConcurrency = v.(int)
	}
	if v, ok := d.GetOk("notify_max_events"); ok {
		cfg.NotifyMaxEvents = v.(int)
	}
	if v, ok := d.GetOk("notify_timeout"); ok {
		cfg.NotifyTimeout = time.Duration(v.(int)) * time.Second
	}
	return nil
}

// validateNotify checks the webhook fields.
func (c *configEntry) validateNotify() error {
	if c.NotifyURL != "" {
		if err := credential.CheckOutboundURL("notify_url", c.NotifyURL); err != nil {
			return err
		}
		if c.NotifySecret == "" {
			return errors.New("notify_secret is required when notify_url is set: deliveries are signed with it")
		}
	}
	if c.NotifyTimeout < minNotifyTimeout || c.NotifyTimeout > maxNotifyTimeout {
		return fmt.Errorf("notify_timeout must be between %s and %s; %s is not", minNotifyTimeout, maxNotifyTimeout, c.NotifyTimeout)
	}
	if c.NotifySecretOverlap < 0 || c.NotifySecretOverlap > maxNotifySecretOverlap {
		return fmt.Errorf("notify_secret_overlap must be between 0 and 720h (30 days); %s is not", c.NotifySecretOverlap)
	}
	if c.NotifyConcurrency < 1 || c.NotifyConcurrency > maxNotifyConcurrency {
		return fmt.Errorf("notify_concurrency must be between 1 and %d; %d is not", maxNotifyConcurrency, c.NotifyConcurrency)
	}
	if c.NotifyMaxEvents < 1 || c.NotifyMaxEvents > maxNotifyMaxEvents {
		return fmt.Errorf("notify_max_events must be between 1 and %d; %d is not", maxNotifyMaxEvents, c.NotifyMaxEvents)
	}
	return nil
}
