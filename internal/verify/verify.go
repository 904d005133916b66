// Package verify checks commit and tag signatures before a commit is
// published (--verify-signatures), with git's own verify-commit and
// verify-tag run through the one git runner.
//
// Keys come from two kinds of file the user mounts: SSH keys in git's
// gpg.ssh.allowedSignersFile format (given to git with -c, so ssh-keygen
// reads the file itself, validity options included), and armored OpenPGP
// public keys, imported into a private GNUPGHOME that New creates and
// Close removes, so the user's own keyring (if any) is never read or
// written. Both files are watched: a change is noticed before the next
// check (KeysChanged), and the keyring is rebuilt from the new file.
//
// Verification fails closed. Anything but a good signature from a known,
// unexpired key refuses the commit with an *Error naming the reason, and
// the reason is counted (git_sync_signature_failures_total). Only the
// object to be published is verified, never its history.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"gitsync/internal/config"
	"gitsync/internal/filestamp"
	"gitsync/internal/gitcmd"
)

// Reasons a signature check refuses a commit: the values of Error.Reason
// and of the reason label of git_sync_signature_failures_total.
const (
	ReasonUnsigned     = "unsigned"          // no signature at all
	ReasonBad          = "bad-signature"     // the signature does not match the content
	ReasonUnknownKey   = "unknown-key"       // signed by a key not in the key files
	ReasonExpiredKey   = "expired-key"       // the key had expired (or was revoked, or not yet valid)
	ReasonNotTag       = "not-annotated-tag" // --verify-signatures=tag but --ref is not an annotated tag
	ReasonNoKeys       = "no-keys"           // the key file for this kind of signature is missing or unreadable
	ReasonVerifyFailed = "verify-failed"     // git could not verify for another reason
)

// Options configures a Verifier.
type Options struct {
	Mode               string // config.VerifyCommit or config.VerifyTag
	AllowedSignersFile string // "" = no SSH keys
	GPGKeyringFile     string // "" = no OpenPGP keys
	Git                string // absolute path of git
	Env                []string
	Dir                string // the repository (git-sync's root)
	Log                *slog.Logger
	// OnFail, if set, is called with the reason of every refusal.
	OnFail func(reason string)
}

// Verifier checks signatures. Safe for use by one goroutine at a time
// (the sync loop); KeysChanged may be called from the same goroutine.
type Verifier struct {
	opts      Options
	gnupgHome string // private keyring, "" without --gpg-keyring-file
	git       *gitcmd.Runner

	mu     sync.Mutex
	loaded map[string]filestamp.Stamp // key file -> what it was when last read
	gpgErr error                      // why the keyring could not be built from the current file
}

// New returns a Verifier. With a keyring file it creates the private
// GNUPGHOME (removed by Close) and imports the keys; a key file that
// cannot be read is not an error here but a refusal of every commit
// signed that way, until it can.
func New(ctx context.Context, opts Options) (*Verifier, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{opts: opts, loaded: map[string]filestamp.Stamp{}}
	env := opts.Env
	if opts.GPGKeyringFile != "" {
		home, err := os.MkdirTemp("", "git-sync-gnupg-")
		if err != nil {
			return nil, fmt.Errorf("create private keyring for --gpg-keyring-file: %w", err)
		}
		v.gnupgHome = home
		env = withVar(env, "GNUPGHOME", home)
	}
	v.git = &gitcmd.Runner{Git: opts.Git, Env: env, Log: opts.Log}
	v.reload(ctx)
	return v, nil
}

// withVar returns env with name set to value (replacing any earlier value).
func withVar(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// Close stops any gpg-agent the keyring started and removes the keyring.
func (v *Verifier) Close() {
	if v.gnupgHome == "" {
		return
	}
	if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
		cmd := exec.Command(gpgconf, "--kill", "all")
		cmd.Env = v.git.Env
		_ = cmd.Run()
	}
	_ = os.RemoveAll(v.gnupgHome)
}

// KeysChanged reports whether a key file changed since it was last read:
// a commit refused earlier deserves another check. It costs a stat per file.
func (v *Verifier) KeysChanged() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, f := range []string{v.opts.AllowedSignersFile, v.opts.GPGKeyringFile} {
		if f != "" && filestamp.Of(f) != v.loaded[f] {
			return true
		}
	}
	return false
}

// reload notes the key files' versions and rebuilds the OpenPGP keyring
// when its file changed.
func (v *Verifier) reload(ctx context.Context) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f := v.opts.AllowedSignersFile; f != "" {
		v.loaded[f] = filestamp.Of(f)
	}
	f := v.opts.GPGKeyringFile
	if f == "" {
		return
	}
	s := filestamp.Of(f)
	if old, ok := v.loaded[f]; ok && old == s {
		return
	}
	v.loaded[f] = s
	v.gpgErr = v.importKeys(ctx)
	if v.gpgErr != nil {
		v.opts.Log.Error("cannot load --gpg-keyring-file; commits signed with OpenPGP are refused until it can be", "error", v.gpgErr)
	} else {
		v.opts.Log.Info("loaded OpenPGP keys", "file", f)
	}
}

// importKeys replaces the private keyring's content with the keys in
// --gpg-keyring-file.
func (v *Verifier) importKeys(ctx context.Context) error {
	armored, err := os.ReadFile(v.opts.GPGKeyringFile)
	if err != nil {
		return fmt.Errorf("read --gpg-keyring-file: %w", err)
	}
	entries, _ := os.ReadDir(v.gnupgHome)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pubring") || e.Name() == "trustdb.gpg" {
			_ = os.Remove(filepath.Join(v.gnupgHome, e.Name()))
		}
	}
	cmd := exec.CommandContext(ctx, "gpg", "--batch", "--quiet", "--no-autostart", "--import")
	cmd.Env = v.git.Env
	cmd.Stdin = bytes.NewReader(armored)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("import --gpg-keyring-file: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Error is a refused signature check.
type Error struct {
	Hash   string // the commit that was not published
	Reason string // one of the Reason* constants
	Detail string // what git (gpg, ssh-keygen) said
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("signature verification refused %s: %s", e.Hash, explain[e.Reason])
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

var explain = map[string]string{
	ReasonUnsigned:     "not signed",
	ReasonBad:          "bad signature (the content does not match it)",
	ReasonUnknownKey:   "signed by a key that is not trusted (not in the key files)",
	ReasonExpiredKey:   "signed by a key that has expired or is not valid at the signing time",
	ReasonNotTag:       "--verify-signatures=tag needs --ref to be an annotated tag, and it is not",
	ReasonNoKeys:       "no usable key file for this kind of signature",
	ReasonVerifyFailed: "git could not verify the signature",
}

// Check verifies the signature on hash (Mode commit) or on the annotated
// tag object (Mode tag) that the fetch of --ref named. nil means a good
// signature from a trusted key; an *Error refuses; an error wrapping ctx's
// error means the check was interrupted.
func (v *Verifier) Check(ctx context.Context, hash, object string) error {
	v.reload(ctx)
	err := v.check(ctx, hash, object)
	var ve *Error
	if errors.As(err, &ve) && v.opts.OnFail != nil {
		v.opts.OnFail(ve.Reason)
	}
	if err == nil {
		v.opts.Log.Info("signature verified", "hash", hash, "mode", v.opts.Mode)
	}
	return err
}

func (v *Verifier) check(ctx context.Context, hash, object string) error {
	fail := func(reason, detail string) error { return &Error{Hash: hash, Reason: reason, Detail: detail} }
	kind, target := "commit", hash
	if v.opts.Mode == config.VerifyTag {
		kind, target = "tag", object
		typ, err := v.git.Run(ctx, v.opts.Dir, "cat-file", "-t", object)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			return fail(ReasonVerifyFailed, err.Error())
		}
		if t := strings.TrimSpace(typ); t != "tag" {
			return fail(ReasonNotTag, "it names a "+t+" directly (a lightweight tag or a branch)")
		}
	}
	raw, err := v.git.Run(ctx, v.opts.Dir, "cat-file", kind, target)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fail(ReasonVerifyFailed, err.Error())
	}
	sig := signatureKind(kind, raw)
	switch {
	case sig == "":
		return fail(ReasonUnsigned, "")
	case sig == "ssh" && v.opts.AllowedSignersFile == "":
		return fail(ReasonNoKeys, "it has an SSH signature and no --allowed-signers-file is given")
	case sig == "openpgp" && v.opts.GPGKeyringFile == "":
		return fail(ReasonNoKeys, "it has an OpenPGP signature and no --gpg-keyring-file is given")
	case sig == "openpgp" && v.gpgErr != nil:
		return fail(ReasonNoKeys, v.gpgErr.Error())
	case sig == "ssh":
		if _, err := os.Stat(v.opts.AllowedSignersFile); err != nil {
			return fail(ReasonNoKeys, "--allowed-signers-file: "+err.Error())
		}
	}
	var args []string
	if v.opts.AllowedSignersFile != "" {
		args = append(args, "-c", "gpg.ssh.allowedSignersFile="+v.opts.AllowedSignersFile)
	}
	args = append(args, "verify-"+kind, "--raw", target)
	out, err := v.git.Run(ctx, v.opts.Dir, args...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	var gerr *gitcmd.Error
	text := out
	if errors.As(err, &gerr) {
		text += "\n" + gerr.Stderr
	}
	reason, detail := classify(text)
	return fail(reason, detail)
}

// signatureKind reports which signature a raw commit or tag object
// carries: "ssh", "openpgp", or "" for none. A commit carries it in a
// gpgsig header, a tag at the end of its message.
func signatureKind(kind, raw string) string {
	var block string
	if kind == "commit" {
		header, _, _ := strings.Cut(raw, "\n\n")
		for _, line := range strings.Split(header, "\n") {
			if rest, ok := strings.CutPrefix(line, "gpgsig "); ok {
				block = rest
				break
			}
			if rest, ok := strings.CutPrefix(line, "gpgsig-sha256 "); ok {
				block = rest
				break
			}
		}
	} else {
		if i := strings.LastIndex(raw, "\n-----BEGIN "); i >= 0 {
			block = raw[i+1:]
		}
	}
	switch {
	case strings.HasPrefix(block, "-----BEGIN SSH SIGNATURE-----"):
		return "ssh"
	case strings.HasPrefix(block, "-----BEGIN PGP SIGNATURE-----"):
		return "openpgp"
	}
	return ""
}

// classify maps what git verify-commit/verify-tag --raw printed (gpg's
// status lines, or ssh-keygen's messages) to a reason and the line that
// says it.
func classify(out string) (reason, detail string) {
	rules := []struct {
		marker, reason string
	}{
		{"[GNUPG:] BADSIG", ReasonBad},
		{"[GNUPG:] EXPKEYSIG", ReasonExpiredKey},
		{"[GNUPG:] REVKEYSIG", ReasonExpiredKey},
		{"[GNUPG:] EXPSIG", ReasonExpiredKey},
		{"[GNUPG:] NO_PUBKEY", ReasonUnknownKey},
		{"[GNUPG:] ERRSIG", ReasonUnknownKey},
		{"incorrect signature", ReasonBad},
		{"key has expired", ReasonExpiredKey},
		{"not yet valid", ReasonExpiredKey},
		{"No principal matched", ReasonUnknownKey},
		{"Unable to open allowed keys file", ReasonNoKeys},
	}
	lines := strings.Split(out, "\n")
	for _, r := range rules {
		for _, l := range lines {
			if strings.Contains(l, r.marker) {
				return r.reason, strings.TrimSpace(l)
			}
		}
	}
	return ReasonVerifyFailed, strings.TrimSpace(out)
}
