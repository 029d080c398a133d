package oauth

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// A token request that runs out of its 30 seconds says so, in the words the troubleshooting
// table of docs/operations.md quotes.
func TestTimeoutIsWordedWithItsBound(t *testing.T) {
	err := describeTokenError(fmt.Errorf("Post: %w", context.DeadlineExceeded), plainWording)
	if err == nil || !strings.Contains(err.Error(), "the token endpoint did not answer within 30s") {
		t.Errorf("a timed-out token request is described as %v", err)
	}
}
