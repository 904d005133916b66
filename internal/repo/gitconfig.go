package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gitsync/internal/atomicfile"
	"gitsync/internal/config"
	"gitsync/internal/gitcmd"
)

// The private global configuration (GIT_CONFIG_GLOBAL) is two files in the
// state directory: globalFile, which git-sync recreates at startup with an
// include of managedFile followed by the user's --git-config entries (written
// by git itself, so a key git rejects fails at startup with git's message),
// and managedFile, which git-sync rewrites whenever the set of worktrees
// changes (safe.directory entries) without touching the user's entries.
const (
	globalFile  = "gitconfig"
	managedFile = "gitconfig-managed"
)

// writePrivateConfig creates the global file and applies the user's entries.
func writePrivateConfig(ctx context.Context, run *gitcmd.Runner, stateDir string, user []config.GitConfigEntry, mode os.FileMode) error {
	path := filepath.Join(stateDir, globalFile)
	if err := atomicfile.Write(path, []byte("[include]\n\tpath = "+managedFile+"\n"), mode); err != nil {
		return err
	}
	for _, e := range user {
		args := []string{"config", "--file", path}
		if e.Add {
			args = append(args, "--add")
		}
		args = append(args, "--", e.Key, e.Value)
		if _, err := run.Run(ctx, stateDir, args...); err != nil {
			return fmt.Errorf("apply --git-config %q: %w", e.Key, err)
		}
	}
	return nil
}

// renderConfig renders entries in git's config file syntax. Keys are
// section.name or section.subsection.name; the subsection may contain dots.
func renderConfig(entries []config.GitConfigEntry) string {
	var b strings.Builder
	for _, e := range entries {
		first := strings.IndexByte(e.Key, '.')
		last := strings.LastIndexByte(e.Key, '.')
		if first <= 0 || last == len(e.Key)-1 {
			continue // not a valid key; callers build these, so never reached
		}
		section, name := e.Key[:first], e.Key[last+1:]
		if first == last {
			fmt.Fprintf(&b, "[%s]\n", section)
		} else {
			fmt.Fprintf(&b, "[%s %s]\n", section, quoteConfig(e.Key[first+1:last]))
		}
		fmt.Fprintf(&b, "\t%s = %s\n", name, quoteConfig(e.Value))
	}
	return b.String()
}

func quoteConfig(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
