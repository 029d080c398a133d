package pecreds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The webhook the outbox delivers to: one POST per attempt, signed per Standard Webhooks.

// webhookPoster posts to config's notify_url, signed per Standard Webhooks under the current
// secret, and the previous one during a rotation's overlap. It reads the config (cached) at every
// attempt, so a changed URL, a new secret or an overlap's end counts from the next attempt, even
// in the middle of a long pass.
type webhookPoster struct {
	n *notifier
	s logical.Storage
}

// errOldSecret: the stored secret is of the form before Standard Webhooks (an upgrade). Nothing
// is sent unsigned: events wait, unattempted, until an operator writes or rotates a secret.
const errOldSecret = "notify_secret is not a Standard Webhooks secret (whsec_...): deliveries are paused until a new one is written or vault write -f <mount>/notify/rotate-secret makes one"

// signingKeys are the keys a delivery is signed with now: the current secret's, then the
// previous one's during its overlap; an error when the current secret is of the old form.
func (c *configEntry) signingKeys(now time.Time) ([][]byte, error) {
	key, err := outbox.ParseSecret("notify_secret", c.NotifySecret)
	if err != nil {
		return nil, errors.New(errOldSecret)
	}
	keys := [][]byte{key}
	if prev, err := outbox.ParseSecret("notify_secret", c.NotifyPreviousSecret); err == nil && now.Before(c.NotifyPreviousUntil) {
		keys = append(keys, prev)
	}
	return keys, nil
}

func (w webhookPoster) Post(ctx context.Context, ev *outbox.Event) error {
	cfg, err := w.n.b.getConfig(ctx, w.s)
	if err != nil {
		return err
	}
	at := w.n.b.deps.now() // each attempt signs its own time
	keys, keyErr := cfg.signingKeys(at)
	if cfg.NotifyURL == "" || keyErr != nil {
		return outbox.ErrPaused // switched off, or nothing to sign with: the events wait
	}
	body, err := ev.Body()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.NotifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return errors.New("the notify_url does not make a request") // the parser's error quotes the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(outbox.HeaderID, ev.ID)
	req.Header.Set(outbox.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(outbox.HeaderSignature, outbox.Sign(ev.ID, at, body, keys...))
	// The outbound client follows no redirect: a redirected POST would arrive elsewhere, or as
	// a bodiless GET whose 2xx would count an event delivered that never was.
	resp, err := w.n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the Task Manager could not be reached: %s", describeTransportError(err))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the Task Manager answered %s", describeStatus(resp.StatusCode))
	}
	return nil
}
