package repo

import (
	"reflect"
	"strings"
	"testing"

	"gitsync/internal/config"
)

func TestIsCommitHash(t *testing.T) {
	cases := map[string]bool{
		strings.Repeat("a", 40):                 true,
		strings.Repeat("0", 64):                 true,
		strings.Repeat("a", 39):                 false,
		strings.Repeat("A", 40):                 false,
		"HEAD":                                  false,
		"main":                                  false,
		"abc1234":                               false,
		strings.Repeat("g", 40):                 false,
		strings.Repeat("a", 41):                 false,
		"refs/heads/" + strings.Repeat("a", 29): false,
	}
	for ref, want := range cases {
		if got := config.IsCommitHash(ref); got != want {
			t.Errorf("IsCommitHash(%q) = %v, want %v", ref, got, want)
		}
	}
}

func TestFetchArgs(t *testing.T) {
	const url = "https://example.com/r.git"
	cases := []struct {
		depth   int
		shallow bool
		filter  string
		want    string
	}{
		{1, false, "", "--depth=1 -- " + url + " main"},
		{5, true, "", "--depth=5 -- " + url + " main"},
		{0, false, "", "--update-shallow -- " + url + " main"},
		{0, true, "", "--unshallow --update-shallow -- " + url + " main"},
		{1, false, "blob:none", "--depth=1 --filter=blob:none -- " + url + " main"},
	}
	for _, c := range cases {
		got := strings.Join(fetchArgs(url, "main", c.depth, c.shallow, c.filter), " ")
		want := "fetch --no-tags --no-auto-gc --no-recurse-submodules --no-progress " + c.want
		if got != want {
			t.Errorf("fetchArgs(depth=%d, shallow=%v, filter=%q) =\n %s\nwant\n %s", c.depth, c.shallow, c.filter, got, want)
		}
	}
}

func TestParseFetchHead(t *testing.T) {
	h := strings.Repeat("1", 40)
	hash, desc, err := parseFetchHead(h + "\t\tbranch 'main' of file:///x\n")
	if err != nil || hash != h || desc != "branch 'main' of file:///x" || mayNeedPeel(desc) {
		t.Fatalf("got %q %q %v", hash, desc, err)
	}
	_, desc, _ = parseFetchHead(h + "\t\ttag 'v1' of file:///x\n")
	if !mayNeedPeel(desc) {
		t.Fatalf("tag entry must be peeled")
	}
	for _, bad := range []string{"", "garbage", "zz\t\tx", h + " branch"} {
		if _, _, err := parseFetchHead(bad); err == nil {
			t.Errorf("parseFetchHead(%q) succeeded", bad)
		}
	}
}

func TestGCCommands(t *testing.T) {
	cases := map[string][][]string{
		"off":        nil,
		"auto":       {{"gc", "--auto", "--quiet"}},
		"always":     {{"repack", "-a", "-d", "-q"}, {"prune", "--expire=now"}},
		"aggressive": {{"gc", "--aggressive", "--prune=now", "--quiet"}},
	}
	for mode, want := range cases {
		if got := gcCommands(mode); !reflect.DeepEqual(got, want) {
			t.Errorf("gcCommands(%q) = %v, want %v", mode, got, want)
		}
	}
}
