package gittest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SSHDOptions configures SSHD.
type SSHDOptions struct {
	// KeyType is the type of generated host and user keys, as ssh-keygen -t
	// takes it; empty means ed25519.
	KeyType string
	// MaxSessions is sshd's MaxSessions (sessions at once on one
	// connection); 0 means 100.
	MaxSessions int
	// AcceptEnv lists the variables sshd lets clients set (sshd's
	// AcceptEnv), e.g. "GIT_PROTOCOL" for git's protocol v2 over ssh;
	// none by default, as in Debian's sshd_config (LANG and LC_* aside).
	AcceptEnv []string
}

// SSHServer is an OpenSSH sshd serving git over ssh on 127.0.0.1, with its
// own host key and authorized keys, all under a t.TempDir(). It logs in as
// the user running the test (root in CI), whose shell runs git-upload-pack
// on the absolute repository path.
//
// Clients need the port: ssh:// URLs (URL) carry it. The scp-like form
// (SCPURL) cannot, so for it the client must read ClientConfigFile, which
// maps 127.0.0.1 to the port; e.g. give git-sync GIT_SSH_COMMAND="ssh -F
// FILE" in its environment (git-sync extends a user-set GIT_SSH_COMMAND),
// or use SSHCommand for plain git.
type SSHServer struct {
	t          testing.TB
	dir        string
	port       int
	user       string
	keyType    string
	keygen     string
	keyFile    string
	knownHosts string
	clientCfg  string
	authKeys   string
	maxSess    int
	acceptEnv  []string
	proc       *serverProcess

	mu    sync.Mutex
	nkeys int
}

// SSHD starts sshd (package openssh-server) on 127.0.0.1 at a random port
// with a fresh host key and one authorized user key (KeyFile), and writes a
// known_hosts file for it (KnownHostsFile). It returns once sshd answers
// with its protocol banner and stops it when the test ends.
func SSHD(t testing.TB, opts SSHDOptions) *SSHServer {
	t.Helper()
	sshd := findSbin("sshd")
	if sshd == "" {
		t.Fatalf("gittest: sshd not found (install it: apt-get install -y openssh-server)")
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("gittest: ssh-keygen not found (install it: apt-get install -y openssh-client): %v", err)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("gittest: ssh not found (install it: apt-get install -y openssh-client): %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("gittest: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory; it refuses to start
		// without it.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("gittest: create /run/sshd: %v", err)
		}
	}
	s := &SSHServer{
		t:         t,
		dir:       t.TempDir(),
		user:      u.Username,
		keyType:   opts.KeyType,
		keygen:    keygen,
		maxSess:   opts.MaxSessions,
		acceptEnv: opts.AcceptEnv,
	}
	if s.maxSess == 0 {
		s.maxSess = 100
	}
	if s.keyType == "" {
		s.keyType = "ed25519"
	}
	hostKey := filepath.Join(s.dir, "ssh_host_key")
	s.generateKey(hostKey)
	s.authKeys = filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(s.authKeys, nil, 0o600); err != nil {
		t.Fatalf("gittest: %v", err)
	}
	s.keyFile = s.AddKey()

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := serverFreePort()
		if err != nil {
			t.Fatalf("gittest: %v", err)
		}
		cfg := filepath.Join(s.dir, "sshd_config")
		s.writeSSHDConfig(sshd, cfg, hostKey, port)
		proc, err := startServerProcess(t, sshd, []string{"-D", "-e", "-f", cfg}, serverEnv(s.dir), port, readSSHBanner)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(proc.stop)
		s.proc = proc
		s.port = port
		s.writeClientFiles(hostKey + ".pub")
		return s
	}
	t.Fatalf("gittest: start sshd: %v", lastErr)
	return nil
}

// findSbin finds a program that may live outside a non-root PATH.
func findSbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// writeSSHDConfig writes a private sshd_config. sshd rejects options it does
// not know, and PerSourcePenalties (OpenSSH 9.8+, which would lock out
// 127.0.0.1 after the failed logins that tests provoke on purpose) is new,
// so it is kept only if `sshd -t` accepts it.
func (s *SSHServer) writeSSHDConfig(sshd, file, hostKey string, port int) {
	q := func(p string) string { return `"` + p + `"` }
	lines := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + q(hostKey),
		"PidFile " + q(filepath.Join(s.dir, "sshd.pid")),
		"AuthorizedKeysFile " + q(s.authKeys),
		"UsePAM no",
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"PrintMotd no",
		"PrintLastLog no",
		"UseDNS no",
		"MaxStartups 200",
		"MaxSessions " + strconv.Itoa(s.maxSess),
		"LoginGraceTime 30",
		"LogLevel VERBOSE",
		// The server side git reads no machine config and trusts test
		// repositories whoever created them. SHLVL=1 keeps bash (the
		// login shell that runs each session's command) from reading
		// the user's ~/.bashrc, which Debian's bash does for commands
		// run by sshd; a slow one would make every session slow.
		"SetEnv GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=* LC_ALL=C SHLVL=1",
	}
	if len(s.acceptEnv) > 0 {
		lines = append(lines, "AcceptEnv "+strings.Join(s.acceptEnv, " "))
	}
	write := func(extra ...string) {
		content := strings.Join(append(lines, extra...), "\n") + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			s.t.Fatalf("gittest: %v", err)
		}
	}
	write("PerSourcePenalties no")
	out, err := exec.Command(sshd, "-t", "-f", file).CombinedOutput()
	if err == nil {
		return
	}
	if strings.Contains(string(out), "PerSourcePenalties") {
		write()
		out, err = exec.Command(sshd, "-t", "-f", file).CombinedOutput()
	}
	if err != nil {
		s.t.Fatalf("gittest: sshd rejects its config: %v\n%s", err, out)
	}
}

// readSSHBanner checks that the peer speaks ssh.
func readSSHBanner(conn net.Conn) error {
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

// writeClientFiles writes known_hosts and the client ssh config.
func (s *SSHServer) writeClientFiles(hostPub string) {
	pub, err := os.ReadFile(hostPub)
	if err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	s.knownHosts = filepath.Join(s.dir, "known_hosts")
	entry := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, strings.TrimSpace(string(pub)))
	if err := os.WriteFile(s.knownHosts, []byte(entry), 0o644); err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	s.clientCfg = filepath.Join(s.dir, "ssh_config")
	cfg := fmt.Sprintf("Host 127.0.0.1\n  Port %d\n", s.port)
	if err := os.WriteFile(s.clientCfg, []byte(cfg), 0o644); err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
}

// generateKey runs ssh-keygen for a key without passphrase at path.
func (s *SSHServer) generateKey(path string) {
	s.t.Helper()
	cmd := exec.Command(s.keygen, "-q", "-t", s.keyType, "-N", "", "-C", "gittest", "-f", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("gittest: ssh-keygen: %v\n%s", err, out)
	}
}

// NewKey generates a client key pair that the server does not accept and
// returns the private key's path.
func (s *SSHServer) NewKey() string {
	s.t.Helper()
	s.mu.Lock()
	s.nkeys++
	path := filepath.Join(s.dir, fmt.Sprintf("id_%d", s.nkeys))
	s.mu.Unlock()
	s.generateKey(path)
	return path
}

// AddKey generates a client key pair, authorizes it (at once: sshd reads
// authorized_keys at every login) and returns the private key's path.
func (s *SSHServer) AddKey() string {
	s.t.Helper()
	path := s.NewKey()
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(pub); err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	return path
}

// SetKeys makes the private keys at paths the only ones the server
// accepts from now on (sshd reads authorized_keys at every login), as when
// a deploy key is rotated. Connections already logged in stay.
func (s *SSHServer) SetKeys(paths ...string) {
	s.t.Helper()
	var all []byte
	for _, p := range paths {
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			s.t.Fatalf("gittest: %v", err)
		}
		all = append(all, pub...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tmp := s.authKeys + ".new"
	if err := os.WriteFile(tmp, all, 0o600); err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
	if err := os.Rename(tmp, s.authKeys); err != nil {
		s.t.Fatalf("gittest: %v", err)
	}
}

// Logins returns, for each successful public-key login so far, the
// SHA256 fingerprint of the key used (as Fingerprint gives it), read from
// sshd's log.
func (s *SSHServer) Logins() []string {
	var fps []string
	for _, line := range strings.Split(s.proc.out.String(), "\n") {
		if !strings.Contains(line, "Accepted publickey for ") {
			continue
		}
		fields := strings.Fields(line)
		fps = append(fps, fields[len(fields)-1])
	}
	return fps
}

// Sessions is the number of sessions that ran a command so far (every
// git fetch, git ls-remote or git-sync poll over ssh is one), from sshd's
// log.
func (s *SSHServer) Sessions() int {
	return strings.Count(s.proc.out.String(), "Starting session: command ")
}

// Log is what sshd has logged so far (LogLevel VERBOSE).
func (s *SSHServer) Log() string { return s.proc.out.String() }

// Fingerprint is the SHA256 fingerprint of the key at path, as sshd logs
// it ("SHA256:...").
func (s *SSHServer) Fingerprint(path string) string {
	s.t.Helper()
	out, err := exec.Command(s.keygen, "-l", "-E", "sha256", "-f", path).Output()
	if err != nil {
		s.t.Fatalf("gittest: ssh-keygen -l %s: %v", path, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		s.t.Fatalf("gittest: ssh-keygen -l %s: %q", path, out)
	}
	return fields[1]
}

// Port is sshd's TCP port on 127.0.0.1.
func (s *SSHServer) Port() int { return s.port }

// User is the login name in the server's URLs.
func (s *SSHServer) User() string { return s.user }

// KeyFile is a private key the server accepts.
func (s *SSHServer) KeyFile() string { return s.keyFile }

// KnownHostsFile is a known_hosts file holding the server's host key.
func (s *SSHServer) KnownHostsFile() string { return s.knownHosts }

// ClientConfigFile is an ssh_config (for ssh -F) that sends connections to
// 127.0.0.1 to the server's port; it sets nothing else, so keys and host
// checking stay the caller's choice.
func (s *SSHServer) ClientConfigFile() string { return s.clientCfg }

// URL is the ssh:// URL of the repository at the absolute path path, e.g.
// ssh://root@127.0.0.1:PORT/tmp/x/upstream.
func (s *SSHServer) URL(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.user, s.port, s.absPath(path))
}

// SCPURL is the scp-like address of the repository at the absolute path
// path, e.g. root@127.0.0.1:/tmp/x/upstream. It names no port: the client
// must use ClientConfigFile (see SSHServer).
func (s *SSHServer) SCPURL(path string) string {
	return fmt.Sprintf("%s@127.0.0.1:%s", s.user, s.absPath(path))
}

func (s *SSHServer) absPath(path string) string {
	if !filepath.IsAbs(path) {
		s.t.Fatalf("gittest: ssh repository path %q is not absolute", path)
	}
	return filepath.ToSlash(path)
}

// SSHCommand is a GIT_SSH_COMMAND for plain git that reaches this server
// with KeyFile, checking the host key against KnownHostsFile, never
// prompting; it works for both URL forms.
func (s *SSHServer) SSHCommand() string {
	return strings.Join([]string{
		"ssh", "-F", sshdShellQuote(s.clientCfg),
		"-o", "BatchMode=yes",
		"-i", sshdShellQuote(s.keyFile), "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", sshdShellQuote("UserKnownHostsFile=" + s.knownHosts),
	}, " ")
}

// sshdShellQuote quotes s for a POSIX shell.
func sshdShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
