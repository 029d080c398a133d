package credential

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// URL rules: the outbound rule for token_url and notify_url, and RFC 3986 path normalization,
// shared by service URLs (checked here) and URL matching (internal to resolution).

// CheckOutboundURL is the rule for token_url and notify_url. Its error names the field and the
// rule, never the URL, which may carry a secret.
func CheckOutboundURL(field, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%s must be an absolute https URL", field)
	case u.User != nil:
		return fmt.Errorf("%s must not carry user info (user:password@): give the credentials in their own fields", field)
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?"):
		return fmt.Errorf("%s must not carry a query", field)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%s must not carry a fragment", field)
	}
	if ip := literalIP(u.Hostname()); ip != nil && NeverCalled(ip) {
		return fmt.Errorf("%s names a link-local, unspecified or multicast address: calling it is refused, whatever the port or path", field)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s must be an https URL; plain http is allowed only to a loopback host (127.0.0.0/8, ::1, localhost)", field)
	}
	return fmt.Errorf("%s must be an absolute https URL", field)
}

// NeverCalled says whether an address is one no outbound call goes to: link-local (the cloud
// metadata services' 169.254.169.254 among them), unspecified or multicast. The dial guard applies
// it to the address a call connects to, and the URL rule to an address written in a URL.
func NeverCalled(ip net.IP) bool {
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// literalIP is the address a URL's host writes literally (an IPv6 zone dropped), or nil for a
// host name.
func literalIP(host string) net.IP {
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	return net.ParseIP(host)
}

// isLoopbackHost says whether a URL's host names this machine: localhost, or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AmbiguousPath names what makes a path ambiguous ("" when nothing does): what RFC 3986
// normalization leaves alone but some servers route elsewhere — a backslash (a separator to IIS),
// an encoded slash or backslash ("%2F", "%5C": decoded into separators by some servers and
// proxies, so "..%2F" is a dot segment to them), a double-encoded dot, slash or backslash
// ("%252E", "%252F", "%255C": dot segments to a server that decodes twice), or a dot segment
// followed by ";" parameters (Tomcat, Spring). It looks at the path with its unreserved
// characters decoded, so "%2E%2E;" counts as "..;". A plain encoded dot segment ("%2E%2E") is no
// ambiguity: RFC 3986 decodes it, and NormalizePath removes it.
func AmbiguousPath(escaped string) string {
	decoded := decodeUnreserved(escaped)
	upper := strings.ToUpper(decoded)
	switch {
	case strings.ContainsRune(decoded, '\\') || strings.Contains(upper, "%5C"):
		return `a backslash ("\\" or "%5C")`
	case strings.Contains(upper, "%2F"):
		return `an encoded slash ("%2F")`
	case strings.Contains(upper, "%252E") || strings.Contains(upper, "%252F") || strings.Contains(upper, "%255C"):
		return `a double-encoded dot, slash or backslash ("%252E", "%252F", "%255C")`
	}
	for _, seg := range strings.Split(decoded, "/") {
		if strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;") {
			return `a dot segment with parameters ("..;")`
		}
	}
	return ""
}

// NormalizePath is RFC 3986's normalization of an escaped path (section 6.2.2): percent-encoded
// unreserved characters decoded, other percent-encodings in upper case, then dot segments
// removed (section 5.2.4), so /admin/../public/x is /public/x and /%61dmin is /admin.
func NormalizePath(escaped string) string {
	return removeDotSegments(decodeUnreserved(escaped))
}

// decodeUnreserved decodes the percent-encodings of unreserved characters and writes the others
// in upper case.
func decodeUnreserved(escaped string) string {
	var sb strings.Builder
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c == '%' && i+2 < len(escaped) && isHex(escaped[i+1]) && isHex(escaped[i+2]) {
			v := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			if isUnreserved(v) {
				sb.WriteByte(v)
			} else {
				sb.WriteString(strings.ToUpper(escaped[i : i+3]))
			}
			i += 2
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// removeDotSegments resolves "." and ".." in an absolute path; ".." never climbs above the root.
func removeDotSegments(path string) string {
	segs := strings.Split(path, "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if last {
			out = append(out, "") // "/a/." and "/a/b/.." keep their trailing slash
		}
	}
	return strings.Join(out, "/")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isUnreserved: RFC 3986's unreserved characters, ALPHA / DIGIT / "-" / "." / "_" / "~".
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
