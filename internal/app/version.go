package app

import (
	"runtime/debug"
	"strings"
)

// Release builds stamp these with the linker, so that --version names the
// release and the commit whatever tree or tool the binary was built from
// (a container build has no .git, and `go build` outside a checkout records
// no VCS data):
//
//	go build -ldflags "-X gitsync/internal/app.releaseVersion=v1.2.3 \
//	    -X gitsync/internal/app.releaseCommit=<full hash>" ./cmd/git-sync
//
// deploy/ldflags.sh prints exactly these flags for the current checkout;
// deploy/image/build.sh and the README's build command use it. They are set
// only at link time and never written at run time.
var (
	releaseVersion string
	releaseCommit  string
)

// version is the line --version prints.
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionLine(releaseVersion, releaseCommit, bi)
}

// versionLine formats "git-sync VERSION (COMMIT)". Stamped values win; an
// unstamped build falls back to what the Go toolchain recorded (a module
// version when installed with `go install pkg@version`, the VCS revision when
// built inside a checkout), and says "(devel)" for the version it cannot
// know.
func versionLine(stampVersion, stampCommit string, bi *debug.BuildInfo) string {
	v, commit, dirty := stampVersion, stampCommit, false
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && stampCommit == "":
				commit = s.Value
			case s.Key == "vcs.modified" && stampCommit == "":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	line := "git-sync " + v
	if commit != "" {
		if dirty && !strings.HasSuffix(commit, "-dirty") {
			commit += "-dirty"
		}
		line += " (" + commit + ")"
	}
	return line
}
