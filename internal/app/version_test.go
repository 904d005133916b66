package app

import (
	"runtime/debug"
	"testing"
)

func TestVersionLine(t *testing.T) {
	vcs := &debug.BuildInfo{
		Main: debug.Module{Path: "gitsync", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1111111111111111111111111111111111111111"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{Main: debug.Module{Path: "gitsync", Version: "v1.4.0"}}
	for _, tc := range []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            string
	}{
		{"stamped", "v1.2.3", "2222222222222222222222222222222222222222", vcs,
			"git-sync v1.2.3 (2222222222222222222222222222222222222222)"},
		{"stamped beats module version", "v1.2.3", "abc", installed, "git-sync v1.2.3 (abc)"},
		{"stamped version, commit from the checkout", "v1.2.3", "", vcs,
			"git-sync v1.2.3 (1111111111111111111111111111111111111111-dirty)"},
		{"checkout only", "", "", vcs, "git-sync (devel) (1111111111111111111111111111111111111111-dirty)"},
		{"go install", "", "", installed, "git-sync v1.4.0"},
		{"nothing known", "", "", nil, "git-sync (devel)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionLine(tc.version, tc.commit, tc.bi); got != tc.want {
				t.Errorf("versionLine(%q, %q) = %q, want %q", tc.version, tc.commit, got, tc.want)
			}
		})
	}
}
