package e2e

// End-to-end tests of --verify-signatures (issue 15) with real keys made by
// the test: ssh-keygen keys signing with gpg.format=ssh, and gpg keys (an
// expired one made with a faked clock). Each case checks what is published
// (or that the published tree stays) and what is reported.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitsync/internal/gittest"
)

// signer is a way to sign commits and tags in an upstream repository: git
// options (-c ...) and extra environment.
type signer struct {
	opts []string
	env  []string
}

// git runs git in up's repository with s's options and environment.
func (s signer) git(t testing.TB, up *gittest.Repo, args ...string) string {
	t.Helper()
	out, err := gittest.RunGit(up.Dir(), append(up.Environ(), s.env...), append(append([]string{}, s.opts...), args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// commit commits note.txt = note, signed by s (unsigned when s is nil).
func commitSigned(t testing.TB, up *gittest.Repo, s *signer, note string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(up.Dir(), "note.txt"), []byte(note+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up.Git("add", "--all")
	if s == nil {
		up.Git("commit", "--quiet", "-m", note)
	} else {
		s.git(t, up, "commit", "--quiet", "-S", "-m", note)
	}
	return up.Head("HEAD")
}

// sigKeys is the key material of one signature kind: a trusted signer, an
// unknown one, one whose key is expired, and the options that make
// git-sync trust the trusted (and the expired) key.
type sigKeys struct {
	trusted, unknown, expired signer
	args                      []string // --verify-signatures is added by the caller
	expiredArgs               []string // key files under which "expired" is expired
}

func writeKeyFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sshKeygen(t testing.TB, dir, name string) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

func newSSHKeys(t testing.TB) sigKeys {
	t.Helper()
	dir := t.TempDir()
	k1, pub1 := sshKeygen(t, dir, "trusted")
	k2, _ := sshKeygen(t, dir, "unknown")
	ssh := func(key string) signer {
		return signer{opts: []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key}}
	}
	allowed := filepath.Join(dir, "allowed_signers")
	writeKeyFile(t, allowed, "signer@example.invalid "+pub1+"\n")
	expired := filepath.Join(dir, "allowed_signers_expired")
	writeKeyFile(t, expired, `signer@example.invalid valid-before="20200101" `+pub1+"\n")
	return sigKeys{
		trusted: ssh(k1), unknown: ssh(k2), expired: ssh(k1),
		args:        []string{"--allowed-signers-file=" + allowed},
		expiredArgs: []string{"--allowed-signers-file=" + expired},
	}
}

// gpgRun runs gpg with home as GNUPGHOME.
func gpgRun(t testing.TB, home string, args ...string) string {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--quiet", "--no-tty"}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("gpg %v: %v: %s", args, err, stderr)
	}
	return string(out)
}

func gpgFingerprint(t testing.TB, home, uid string) string {
	t.Helper()
	for _, line := range strings.Split(gpgRun(t, home, "--with-colons", "--list-secret-keys", uid), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint for %s", uid)
	return ""
}

func newGPGKeys(t testing.TB) sigKeys {
	t.Helper()
	dir := authShortTempDir(t, "gpg") // gpg-agent's socket path must stay short
	home := filepath.Join(dir, "h")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = cmd.Run()
	})
	gen := func(uid string, extra ...string) string {
		gpgRun(t, home, append(extra, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", map[bool]string{true: "1d", false: "never"}[len(extra) > 0])...)
		return gpgFingerprint(t, home, uid)
	}
	trusted := gen("Trusted <trusted@example.invalid>")
	unknown := gen("Unknown <unknown@example.invalid>")
	// A key made in 2020 that expired a day later; it signs with the
	// clock set back to when it was valid.
	old := gen("Old <old@example.invalid>", "--faked-system-time", "20200101T000000")
	keyring := filepath.Join(dir, "keys.asc")
	writeKeyFile(t, keyring, gpgRun(t, home, "--armor", "--export", trusted, old))
	program := writeScript(t, "gpg", fmt.Sprintf("GNUPGHOME=%q exec gpg \"$@\"\n", home))
	oldProgram := writeScript(t, "gpg-2020", fmt.Sprintf("GNUPGHOME=%q exec gpg --faked-system-time 20200101T120000 \"$@\"\n", home))
	gpgSigner := func(prog, fpr string, env ...string) signer {
		return signer{opts: []string{"-c", "gpg.format=openpgp", "-c", "gpg.program=" + prog, "-c", "user.signingkey=" + fpr}, env: env}
	}
	args := []string{"--gpg-keyring-file=" + keyring}
	return sigKeys{
		trusted: gpgSigner(program, trusted), unknown: gpgSigner(program, unknown),
		expired: gpgSigner(oldProgram, old, "GIT_COMMITTER_DATE=2020-01-01T12:00:00Z", "GIT_AUTHOR_DATE=2020-01-01T12:00:00Z"),
		args:    args, expiredArgs: args,
	}
}

func TestVerifySignatures(t *testing.T) {
	t.Parallel()
	for _, kind := range []struct {
		name string
		keys func(testing.TB) sigKeys
	}{{"ssh", newSSHKeys}, {"gpg", newGPGKeys}} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			k := kind.keys(t)
			commitArgs := append([]string{"--verify-signatures=commit"}, k.args...)

			t.Run("commit", func(t *testing.T) {
				up := gittest.NewRepo(t)
				root := newRoot(t)
				link := filepath.Join(root, "link")
				good := commitSigned(t, up, &k.trusted, "good")
				if got := mustSyncOnce(t, up, root, commitArgs...); got != good {
					t.Fatalf("published %s, want the well-signed %s", got, good)
				}
				refused := func(what, hash, want string) {
					t.Helper()
					res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time"}, commitArgs)...)
					if res.Code != 1 {
						t.Fatalf("%s: want exit 1, got %s", what, res)
					}
					msg := "signature verification refused " + hash + ": " + want
					if !strings.Contains(res.Stderr, msg) {
						t.Fatalf("%s: stderr does not say %q:\n%s", what, msg, res.Stderr)
					}
					assertPublished(t, root, link, good)
					if exists(worktreePath(root, hash)) {
						t.Fatalf("%s: refused tree %s left on disk", what, hash)
					}
				}
				refused("unsigned", commitSigned(t, up, nil, "unsigned"), "not signed")
				refused("unknown key", commitSigned(t, up, &k.unknown, "unknown"), "signed by a key that is not trusted")

				// Tampered: a signed commit re-created with the same
				// message but no signature, and one whose content was
				// changed under its signature.
				signed := commitSigned(t, up, &k.trusted, "to be tampered")
				recreated := up.Git("commit-tree", signed+"^{tree}", "-p", signed+"^", "-m", "to be tampered")
				up.Git("reset", "--quiet", "--hard", recreated)
				refused("re-created unsigned", recreated, "not signed")
				raw := up.Git("cat-file", "commit", signed)
				forged := strings.Replace(raw, "to be tampered", "to be tampered!", 1)
				f := filepath.Join(t.TempDir(), "forged")
				writeKeyFile(t, f, forged+"\n")
				forgedHash := up.Git("hash-object", "-t", "commit", "-w", f)
				up.Git("reset", "--quiet", "--hard", forgedHash)
				refused("content changed under the signature", forgedHash, "bad signature")

				// A good commit after all that is published.
				again := commitSigned(t, up, &k.trusted, "good again")
				if got := mustSyncOnce(t, up, root, commitArgs...); got != again {
					t.Fatalf("published %s, want %s", got, again)
				}
			})

			t.Run("expired key", func(t *testing.T) {
				up := gittest.NewRepo(t)
				root := newRoot(t)
				h := commitSigned(t, up, &k.expired, "old key")
				res := runOnce(t, concat(syncArgs(up, root), []string{"--one-time", "--verify-signatures=commit"}, k.expiredArgs)...)
				want := "signature verification refused " + h + ": signed by a key that has expired"
				if res.Code != 1 || !strings.Contains(res.Stderr, want) {
					t.Fatalf("want exit 1 saying %q, got %s", want, res)
				}
				if exists(filepath.Join(root, "link")) {
					t.Fatal("a commit signed by an expired key was published")
				}
			})

			t.Run("tag", func(t *testing.T) {
				up := gittest.NewRepo(t)
				root := newRoot(t)
				h := commitSigned(t, up, nil, "tagged") // commit mode would refuse it
				k.trusted.git(t, up, "tag", "-s", "-m", "release v1", "v1", h)
				up.Git("tag", "light", h)
				up.Git("tag", "-a", "-m", "not signed", "plain", h)
				tagArgs := append([]string{"--verify-signatures=tag"}, k.args...)
				if got := mustSyncOnce(t, up, root, append(tagArgs, "--ref=v1")...); got != h {
					t.Fatalf("signed tag v1: published %s, want %s", got, h)
				}
				for _, c := range []struct{ ref, want string }{
					{"light", "needs --ref to be an annotated tag"},
					{"plain", "not signed"},
				} {
					r2 := newRoot(t)
					res := runOnce(t, concat(syncArgs(up, r2), []string{"--one-time", "--ref=" + c.ref}, tagArgs)...)
					if res.Code != 1 || !strings.Contains(res.Stderr, c.want) {
						t.Fatalf("--ref=%s: want exit 1 saying %q, got %s", c.ref, c.want, res)
					}
					if exists(filepath.Join(r2, "link")) {
						t.Fatalf("--ref=%s was published", c.ref)
					}
				}
			})
		})
	}
}

// TestVerifySignaturesKeyRotation: a commit signed by a key that is not
// (yet) allowed is refused, counted and logged while the published tree
// stays; adding the key to --allowed-signers-file publishes it without
// --ref moving.
func TestVerifySignaturesKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, pub1 := sshKeygen(t, dir, "old")
	k2, pub2 := sshKeygen(t, dir, "new")
	allowed := filepath.Join(dir, "allowed_signers")
	writeKeyFile(t, allowed, "old@example.invalid "+pub1+"\n")
	sign := func(key string) *signer {
		return &signer{opts: []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key}}
	}
	up := gittest.NewRepo(t)
	a := commitSigned(t, up, sign(k1), "by the old key")
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr, metricArgs := authMetricsArgs(t)
	p := start(t, concat(syncArgs(up, root), metricArgs, []string{"--period=50ms", "--max-failures=0",
		"--verify-signatures=commit", "--allowed-signers-file=" + allowed, "--error-file=err.json"})...)
	waitForLink(t, p, link, a)

	b := commitSigned(t, up, sign(k2), "by the new key")
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "one unknown-key refusal",
		"git_sync_signature_failures_total", "reason", "unknown-key")
	assertPublished(t, root, link, a)
	waitFor(t, syncDeadline, func() bool {
		r, _, ok := readErrorFile(filepath.Join(root, "err.json"))
		return ok && strings.Contains(r.Err, "signature verification refused "+b)
	}, "error file reporting the refusal of %s", b)
	polls := metric(t, addr, "git_sync_count_total", "status", "noop")
	waitForMetric(t, addr, func(v float64) bool { return v >= polls+3 }, "more polls", "git_sync_count_total", "status", "noop")
	if v := metric(t, addr, "git_sync_signature_failures_total", "reason", "unknown-key"); v != 1 {
		t.Fatalf("refusals = %v after idle polls, want 1 (checked again only when --ref or the keys change)", v)
	}

	writeKeyFile(t, allowed, "old@example.invalid "+pub1+"\nnew@example.invalid "+pub2+"\n")
	waitForLink(t, p, link, b)
	assertPublished(t, root, link, b)
	waitFor(t, syncDeadline, func() bool { return !exists(filepath.Join(root, "err.json")) }, "error file removed after the publish")
	if e := errorRecords(p.Logs()); len(e) != 1 || !strings.Contains(e[0], "not trusted") {
		t.Fatalf("want exactly one error record, for the refusal; got %q", e)
	}
}
