package pecreds

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The user's manual in docs/ names the tests behind its promises and links files of the
// project: every test it names exists, every file it links exists, and it never sends a reader
// to a folder outside the product.

var (
	docTestName = regexp.MustCompile("`(Test[A-Za-z0-9_]+|Benchmark[A-Za-z0-9_]+)`")
	docLink     = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	funcDecl    = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark)[A-Za-z0-9_]+)\(`)
)

// testFuncs finds every test and benchmark function of the repository.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcDecl.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestDocsNameTestsAndFilesThatExist(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil || len(pages) < 4 {
		t.Fatalf("docs/ holds %d pages (%v): api, concepts, operations and security are expected", len(pages), err)
	}
	funcs := testFuncs(t)
	named := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range docTestName.FindAllStringSubmatch(text, -1) {
			named++
			if !funcs[m[1]] {
				t.Errorf("%s names %s, which no test file of the repository declares", page, m[1])
			}
		}
		for _, m := range docLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join("docs", target)); err != nil {
				t.Errorf("%s links %s, which does not exist", page, target)
			}
		}
		if strings.Contains(text, "shared/") {
			t.Errorf("%s points at a shared/ folder, which the product does not have", page)
		}
	}
	if named == 0 {
		t.Errorf("docs/ names no test at all: security.md's table should")
	}
}
