package pecreds

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Technical credentials in a resolve: the bounded wait for the last hope's tokens (what a token
// makes of its credential is technicalAsResolved, token_fetch.go).

// awaitTokens is the last hope of a resolve that found nothing usable: the tokens it needs are
// asked for at once, and it chooses again as each flight lands, answering as soon as something is
// usable; after deps.tokenWait, the flights still in the air count as pending (a retryable answer).
func (b *backend) awaitTokens(ctx context.Context, s logical.Storage, cfg *configEntry, m *resolve.Match, q resolve.Query, snap resolve.Snapshot, names []string) (*resolve.Resolution, error) {
	timer := time.NewTimer(b.deps.tokenWait)
	defer timer.Stop()
	// One select over every flight's done, the timer and the request: waiting costs no goroutine.
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
	}
	waiting := make([]string, 0, len(names))
	flights := make([]*tokenFlight, 0, len(names))
	for _, name := range names {
		f := b.demandToken(s, cfg, name, false)
		waiting, flights = append(waiting, name), append(flights, f)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(f.done)})
	}
	for len(waiting) > 0 {
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0: // the wait ran out: what is still in the air counts as pending
			for _, name := range waiting {
				if err := b.snapTechnical(ctx, s, snap, name, nil, true); err != nil {
					return nil, err
				}
			}
			return resolve.Choose(m, q, snap, b.deps.now()), nil
		case 1:
			return nil, ctx.Err()
		}
		i := chosen - 2
		f, name := flights[i], waiting[i]
		cases = append(cases[:chosen], cases[chosen+1:]...)
		waiting, flights = append(waiting[:i], waiting[i+1:]...), append(flights[:i], flights[i+1:]...)
		if f.err != nil {
			return nil, f.err
		}
		if err := b.snapTechnical(ctx, s, snap, name, f.st, false); err != nil {
			return nil, err
		}
		if res := resolve.Choose(m, q, snap, b.deps.now()); len(res.Found) > 0 {
			passedOver(res)
			return res, nil
		}
	}
	return resolve.Choose(m, q, snap, b.deps.now()), nil
}

// snapTechnical puts a technical credential into a resolve's snapshot after its flight landed
// (st), or while it is still in the air (pending: the stored state is read).
func (b *backend) snapTechnical(ctx context.Context, s logical.Storage, snap resolve.Snapshot, name string, st *oauth.State, pending bool) error {
	e, err := b.getTechnical(ctx, s, name)
	if err != nil || e == nil {
		snap.Technical[name] = resolve.Technical{Unusable: fmt.Sprintf("technical credential %q does not exist", name)}
		return err
	}
	if pending {
		if st, err = b.getTokenState(ctx, s, name); err != nil {
			return err
		}
	}
	plan := b.tokenPlan(e, st, pending)
	if plan == planFetch {
		plan = planWait // its flight has landed: no second request in this resolve
	}
	snap.Technical[name] = b.technicalAsResolved(e, st, b.deps.now(), plan)
	return nil
}

// passedOver says in the trace why an entry before the answer was not waited for.
func passedOver(res *resolve.Resolution) {
	first := res.Found[0].Index
	for i, t := range res.Tried {
		if t.Index < first && t.Type == "technical" && (slices.Contains(res.Refresh, t.Name) || slices.Contains(res.Pending, t.Name)) {
			res.Tried[i].Skipped += "; passed over, not waited for: a later credential is usable now (its token is asked for in the background)"
		}
	}
}
