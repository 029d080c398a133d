package pecreds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Outbound calls (DESIGN.md "Outbound calls"): the plugin calls only the token endpoints and the
// webhook an operator configured, and hands nothing to anywhere else. This file is that boundary:
// the URL rule checked when a URL is written, and the HTTP client that enforces it again when a
// call is made — no redirect, no proxy, no link-local, unspecified or multicast address whatever
// DNS answers, plain http to loopback only, answers read up to maxAnswerBytes — and the wording of
// a failure, which never carries what the endpoint said.

// maxAnswerBytes bounds what is read of an endpoint's answer.
const maxAnswerBytes = 1 << 20

// outboundRefusal is a call the guard refused before anything was sent; its text is ours.
type outboundRefusal struct{ reason string }

func (e outboundRefusal) Error() string { return e.reason }

// plainHTTPKey marks a request sent over plain http: its connection must go to a loopback address.
type plainHTTPKey struct{}

// guardedDial dials as net.Dialer does, after checking the address DNS answered: the check runs
// on the very address the socket connects to, so no DNS answer gets around it.
func guardedDial(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		loopbackOnly, _ := ctx.Value(plainHTTPKey{}).(bool)
		d := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			switch {
			case ip == nil:
				return outboundRefusal{"connecting to an address that does not parse is refused"}
			case credential.NeverCalled(ip):
				return outboundRefusal{fmt.Sprintf("connecting to %s is refused: link-local, unspecified and multicast addresses are never called", ip)}
			case loopbackOnly && !ip.IsLoopback():
				return outboundRefusal{fmt.Sprintf("plain http to %s is refused: http is allowed only to a loopback address", ip)}
			}
			return nil
		}}
		return d.DialContext(ctx, network, addr)
	}
}

// guardedTransport checks each request's URL against the rule once more (a URL stored before the
// rule existed is refused too), marks plain http for the dial guard, and bounds the answer.
type guardedTransport struct{ next http.RoundTripper }

func (t guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := credential.CheckOutboundURL("the URL", req.URL.String()); err != nil {
		return nil, outboundRefusal{err.Error()}
	}
	if strings.EqualFold(req.URL.Scheme, "http") {
		req = req.WithContext(context.WithValue(req.Context(), plainHTTPKey{}, true))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxAnswerBytes), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// newOutboundClient is the HTTP client of every outbound call.
func newOutboundClient(timeout time.Duration) *http.Client {
	transport := &http.Transport{
		// No proxy: the dial guard must see the address the call really goes to.
		Proxy:                  nil,
		DialContext:            guardedDial(10 * time.Second),
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ExpectContinueTimeout:  time.Second,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: guardedTransport{next: transport},
		Timeout:   timeout,
		// A redirect is never followed: it would carry the POST (and its Basic header) elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// describeStatus is an HTTP status in words of our own: the reason phrase an endpoint sends is
// its text, and may be anything.
func describeStatus(code int) string {
	s := fmt.Sprintf("HTTP %d", code)
	if text := http.StatusText(code); text != "" {
		s += " " + text
	}
	if code >= 300 && code < 400 {
		s += " (redirects are not followed)"
	}
	return s
}

// describeTransportError says why a call failed to get an answer, in words of our own: transport
// errors may quote what the peer sent (a malformed answer, a certificate's names).
func describeTransportError(err error) string {
	var refused outboundRefusal
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "no answer in time"
	case errors.As(err, &dnsErr):
		return "its host name could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostnameErr), errors.As(err, &invalidCert):
		return "its TLS certificate was not accepted"
	}
	return "the connection failed or the answer was malformed"
}
