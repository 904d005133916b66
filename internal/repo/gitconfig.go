package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"gitsync/internal/atomicfile"
	"gitsync/internal/gitcmd"
	"gitsync/internal/gitconfig"
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
func writePrivateConfig(ctx context.Context, run *gitcmd.Runner, stateDir string, user []gitconfig.Entry, mode os.FileMode) error {
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
