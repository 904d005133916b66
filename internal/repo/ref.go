package repo

import (
	"fmt"
	"strings"
)

// isHex reports whether s is non-empty lower-case hex.
func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// fetchArgs builds the argv of the one fetch that both brings the ref's
// commit and tells which commit it is (through FETCH_HEAD). No refspec
// destination is given, so no local ref is written: nothing can be rejected
// as non-fast-forward or as clobbering a tag, and nothing pins superseded
// commits against gc.
func fetchArgs(repoURL, ref string, depth int, shallow bool, filter string) []string {
	args := []string{"fetch", "--no-tags", "--no-auto-gc", "--no-recurse-submodules", "--no-progress"}
	switch {
	case depth > 0:
		args = append(args, fmt.Sprintf("--depth=%d", depth))
	case shallow:
		args = append(args, "--unshallow", "--update-shallow")
	default:
		// A remote that is itself shallow (a relay at its default depth)
		// can only send history that ends in shallow roots; without
		// this, git fetches the objects, refuses the ref and writes an
		// empty FETCH_HEAD.
		args = append(args, "--update-shallow")
	}
	if filter != "" {
		args = append(args, "--filter="+filter)
	}
	return append(args, "--", repoURL, ref)
}

// parseFetchHead returns the object name and description of the first line
// of FETCH_HEAD ("<hash>\t[not-for-merge]\t<description>").
func parseFetchHead(content string) (hash, desc string, err error) {
	line, _, _ := strings.Cut(content, "\n")
	fields := strings.SplitN(line, "\t", 3)
	if len(fields) != 3 || !isHex(fields[0]) {
		return "", "", fmt.Errorf("unexpected FETCH_HEAD content %q", line)
	}
	return fields[0], fields[2], nil
}

// mayNeedPeel reports whether a FETCH_HEAD entry may name a tag object
// rather than a commit, so that it has to be peeled with git.
func mayNeedPeel(desc string) bool {
	return strings.HasPrefix(desc, "tag ")
}
