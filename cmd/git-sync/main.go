// Command git-sync keeps a local directory in step with a remote git ref and
// publishes each synced commit atomically. See `git-sync --man`.
package main

import (
	"os"

	"gitsync/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}
