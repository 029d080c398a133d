package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

var (
	benchVariants = flag.String("bench.variants", "", "BenchmarkVariants: name=path-to-a-plugin-binary, comma-separated, measured against the freshly built plugin")
	benchRounds   = flag.Int("bench.rounds", 12, "BenchmarkVariants, BenchmarkCreate: rounds, each measuring every build (every kind of write) once, their order rotating")
	benchPerRound = flag.Int("bench.per-round", 1000, "BenchmarkVariants, BenchmarkCreate: process creates (and as many resolves, or writes) per build and round")
)

// BenchmarkVariants decides whether a departure from a default earns its keep: other builds of
// the plugin (say, this tree with one change reverted) are registered beside the freshly built
// one, each on its own mount of one dev Vault, and measured in the same run in rounds whose order
// rotates, so that the drift of a busy machine falls on all alike. Each round, each build gets
// process creates and then as many hot resolves from 16 workers; a build's figure is the
// median over the rounds of its rate divided by the fresh build's rate in that round (the
// geometric mean is logged too). A copy of the fresh build is always measured as a control.
//
//	scripts/bench.sh -bench Variants -bench.variants=nocache=/tmp/nocache,pool=/tmp/pool -bench.rounds=30 -bench.per-round=500
func BenchmarkVariants(b *testing.B) {
	if *benchVariants == "" {
		b.Skip("no -bench.variants given")
	}
	names := []string{"fresh"}
	// The mounts stay: disabling one would revoke its processes' leases one by one; the dev server
	// ends with the run.
	enableMount(b, "pecreds-variant-fresh")
	mounts := map[string]string{"fresh": "pecreds-variant-fresh"}
	// A copy of the fresh build, as a control: its figure is what two identical builds differ by
	// on this machine in this run, the floor below which no difference means anything.
	variants := append([]string{"control=" + filepath.Join(env.pluginDir, pluginName)}, strings.Split(*benchVariants, ",")...)
	for _, v := range variants {
		name, path, ok := strings.Cut(v, "=")
		if !ok {
			b.Fatalf("-bench.variants: %q is not name=path", v)
		}
		names = append(names, name)
		mounts[name] = mountBuild(b, "pecreds-"+name, "pecreds-variant-"+name, path)
	}
	for _, name := range names {
		if _, err := env.client.Logical().Write(mounts[name]+"/registry/orders", map[string]any{"services": []map[string]any{
			{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
		}}); err != nil {
			b.Fatal(err)
		}
	}
	current := `{"type": "password", "username": "nia", "password": "nia-variant-password"}`
	rememberSecrets("nia-variant-password")
	ratios := map[string]map[string][]float64{"create": {}, "resolve": {}}
	for round := 0; round < *benchRounds; round++ {
		rates := map[string]map[string]float64{"create": {}, "resolve": {}}
		for k := range names {
			name := names[(round+k)%len(names)]
			mount, from := mounts[name], round**benchPerRound
			rates["create"][name] = rate(b, func(i int) error {
				_, err := env.client.Logical().Write(fmt.Sprintf("%s/process/p%d", mount, from+i), map[string]any{"definition": "orders", "current": current})
				return err
			})
			rates["resolve"][name] = rate(b, func(i int) error {
				return readOK(fmt.Sprintf("%s/process/p%d/resolve/crm", mount, from+i))()
			})
		}
		for what, r := range rates {
			for _, name := range names[1:] {
				ratios[what][name] = append(ratios[what][name], r[name]/r["fresh"])
			}
		}
	}
	for _, name := range names[1:] {
		for _, what := range []string{"create", "resolve"} {
			rs := ratios[what][name]
			logSum := 0.0
			for _, r := range rs {
				logSum += math.Log(r)
			}
			mean := math.Exp(logSum / float64(len(rs)))
			sort.Float64s(rs)
			median := rs[len(rs)/2]
			b.Logf("%s against the fresh build, %ss: median round %.3f ×, geometric mean %.3f × (%d rounds of %d; from %.3f to %.3f)",
				name, what, median, mean, len(rs), *benchPerRound, rs[0], rs[len(rs)-1])
			b.ReportMetric(median, name+"-"+what+"/fresh")
		}
	}
}

// rate runs fn for each of the round's requests from 16 workers and answers requests a second.
func rate(b *testing.B, fn func(i int) error) float64 {
	start := time.Now()
	forEach(b, *benchPerRound, fn)
	return float64(*benchPerRound) / time.Since(start).Seconds()
}

// mountBuild registers the plugin binary at path as a secrets plugin of that name and mounts it
// at mount.
func mountBuild(b *testing.B, plugin, mount, path string) string {
	b.Helper()
	src, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(env.pluginDir, plugin), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
	if err := env.client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name: plugin, Type: api.PluginTypeSecrets, Command: plugin, SHA256: hex.EncodeToString(h.Sum(nil)),
	}); err != nil {
		b.Fatal(err)
	}
	if err := env.client.Sys().Mount(mount, &api.MountInput{Type: plugin}); err != nil {
		b.Fatal(err)
	}
	return mount
}
