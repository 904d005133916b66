package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The ssh scenario: the idle poll and the update over OpenSSH's sshd on
// 127.0.0.1, for git-sync with its kept connection (the default), git-sync
// with a plain connection per poll (GIT_SSH_COMMAND naming ControlPath=none,
// which turns the kept connection off), and the floor with plain ssh (`git
// ls-remote`, `floor.sh update`). Server CPU is that of sshd's process
// tree: the listener's own and reaped time plus every live descendant's
// (per-connection sshd, the shell and git-upload-pack of each session).
// The sshd sets SHLVL=1 for sessions, so that bash (the login shell that
// runs each command) does not read the user's ~/.bashrc, which would
// measure this machine's shell set-up rather than git over ssh.

// Targets of the ssh scenario (small repository): per idle poll, client
// CPU (git-sync's tree, its master included) and server CPU; the update's
// CPU as a ratio to the floor's over plain ssh.
const (
	sshIdleClientMax = 10 * time.Millisecond
	sshIdleServerMax = 15 * time.Millisecond
	sshUpdateMax     = 1.1
)

// sshServer is the benchmark's sshd.
type sshServer struct {
	cmd        *exec.Cmd
	port       int
	key        string
	knownHosts string
	user       string
}

func (b *bench) startSSHD(ctx context.Context) (*sshServer, error) {
	sshd := ""
	for _, p := range []string{"/usr/sbin/sshd", "/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			sshd = p
		}
	}
	if sshd == "" {
		return nil, fmt.Errorf("sshd not found (apt-get install -y openssh-server)")
	}
	dir := filepath.Join(b.work, "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_ = os.MkdirAll("/run/sshd", 0o755)
	s := &sshServer{key: filepath.Join(dir, "id"), knownHosts: filepath.Join(dir, "known_hosts")}
	hostKey := filepath.Join(dir, "host")
	for _, k := range []string{hostKey, s.key} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(s.key + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.port = port
	u, _ := os.LookupEnv("USER")
	if u == "" {
		u = "root"
	}
	if out, err := exec.Command("id", "-un").Output(); err == nil {
		u = strings.TrimSpace(string(out))
	}
	s.user = u
	cfg := strings.Join([]string{
		"Port " + strconv.Itoa(port), "ListenAddress 127.0.0.1", "HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "pid"), "AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"UsePAM no", "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password", "UseDNS no", "MaxStartups 200", "MaxSessions 100", "LogLevel ERROR",
		"SetEnv GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null SHLVL=1",
	}, "\n") + "\n"
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgPath)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(hostPub))
	line := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, f[0], f[1])
	if err := os.WriteFile(s.knownHosts, []byte(line), 0o644); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("sshd does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sshServer) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
}

// cpu is the CPU of sshd's whole tree so far.
func (s *sshServer) cpu() time.Duration { return treeCPU(s.cmd.Process.Pid) }

// treeCPU sums utime+stime+cutime+cstime over pid and its live
// descendants: everything the tree used, ended processes included once
// their parent has reaped them.
func treeCPU(pid int) time.Duration {
	var total time.Duration
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if st, err := readProcStat(p); err == nil {
			total += st.CPU
		}
		queue = append(queue, childrenOf(p)...)
	}
	return total
}

// url is the ssh:// URL of the repository at dir.
func (s *sshServer) url(dir string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.user, s.port, dir)
}

// plainSSH is a GIT_SSH_COMMAND for the floor, as git-sync builds it but
// without connection sharing.
func (s *sshServer) plainSSH() string {
	return "ssh -o BatchMode=yes -o IdentityFile=" + s.key + " -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + s.knownHosts
}

func (b *bench) scenarioSSH(ctx context.Context) error {
	srv, err := b.startSSHD(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	u, err := b.newUpstream(ctx, "small")
	if err != nil {
		return err
	}
	url := srv.url(u.Dir)
	flags := []string{"--ssh-key-file=" + srv.key, "--ssh-known-hosts-file=" + srv.knownHosts}
	plainEnv := []string{"GIT_SSH_COMMAND=ssh -o ControlPath=none"}
	b.logf("ssh: small repo over sshd on 127.0.0.1:%d, --period=%v, windows of %v", srv.port, b.opt.idlePeriod, b.opt.idleWindow)

	// Idle poll.
	type idle struct{ client, server, rate []float64 }
	idleRun := func(env []string) (idle, error) {
		var r idle
		d, err := b.startDaemon(ctx, daemonConfig{URL: url, Root: b.newRoot("ssh-idle"), Depth: 1, Period: b.opt.idlePeriod, Extra: flags, Env: env})
		if err != nil {
			return r, err
		}
		defer b.stopDaemon(d)
		if _, err := d.waitPolls(ctx, 3, time.Minute); err != nil {
			return r, err
		}
		for range b.opt.reps {
			d.Meter.waitIdleMoment(ctx)
			m0, err := d.metrics(ctx)
			if err != nil {
				return r, err
			}
			c0, s0, t0 := d.Meter.sample(), srv.cpu(), time.Now()
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(b.opt.idleWindow):
			}
			d.Meter.waitIdleMoment(ctx)
			c1, s1, t1 := d.Meter.sample(), srv.cpu(), time.Now()
			m1, err := d.metrics(ctx)
			if err != nil {
				return r, err
			}
			n := m1[mNoop] - m0[mNoop]
			if n < 1 {
				return r, fmt.Errorf("no idle polls in a window:\n%s", d.logTail())
			}
			r.client = append(r.client, ms(c1.Total-c0.Total)/n)
			r.server = append(r.server, ms(s1-s0)/n)
			r.rate = append(r.rate, n/t1.Sub(t0).Seconds())
		}
		return r, nil
	}
	kept, err := idleRun(nil)
	if err != nil {
		return fmt.Errorf("kept connection: %w", err)
	}
	plain, err := idleRun(plainEnv)
	if err != nil {
		return fmt.Errorf("plain connections: %w", err)
	}
	savedEnv := b.env
	b.env = append(append([]string(nil), b.env...), "GIT_SSH_COMMAND="+srv.plainSSH())
	defer func() { b.env = savedEnv }()
	var flClient, flServer []float64
	for range b.opt.reps {
		s0 := srv.cpu()
		var cpu time.Duration
		for range b.opt.floorCalls {
			m, err := b.measure(ctx, "git", "ls-remote", url, fixtureBranch)
			if err != nil {
				return err
			}
			cpu += m.CPU
		}
		n := float64(b.opt.floorCalls)
		flClient = append(flClient, ms(cpu)/n)
		flServer = append(flServer, ms(srv.cpu()-s0)/n)
	}
	note := fmt.Sprintf("plain connection per poll (git-sync): client %.1f ms, server %.1f ms, %.1f polls/s; kept: %.1f polls/s",
		median(plain.client), median(plain.server), median(plain.rate), median(kept.rate))
	b.addRatio("ssh idle poll", "small", "ssh", "client CPU per poll", "ms", kept.client, flClient, 0, 0, note).MaxAbs = ms(sshIdleClientMax)
	b.addRatio("ssh idle poll", "small", "ssh", "server CPU per poll", "ms", kept.server, flServer, 0, 0, "").MaxAbs = ms(sshIdleServerMax)
	b.addAbs("ssh idle poll", "small", "ssh", "polls per second", "/s", kept.rate, 0, "")
	for _, r := range b.results[len(b.results)-3 : len(b.results)-1] {
		r.evaluate()
	}

	// Update: one new commit, one SIGHUP, against floor.sh update over
	// plain ssh.
	updRun := func(env []string) (gsCPU, gsServer []float64, err error) {
		d, err := b.startDaemon(ctx, daemonConfig{URL: url, Root: b.newRoot("ssh-update"), Depth: 1, Period: time.Hour,
			Extra: append([]string{"--sync-on-signal=SIGHUP"}, flags...), Env: env})
		if err != nil {
			return nil, nil, err
		}
		defer b.stopDaemon(d)
		for i := range b.opt.reps {
			hash, err := u.Commit("ssh.txt", fmt.Sprintf("update %d %d\n", i, time.Now().UnixNano()))
			if err != nil {
				return nil, nil, err
			}
			s0 := srv.cpu()
			m, err := b.gsUpdate(ctx, d, hash)
			if err != nil {
				return nil, nil, err
			}
			gsCPU = append(gsCPU, ms(m.CPU))
			gsServer = append(gsServer, ms(srv.cpu()-s0))
		}
		return gsCPU, gsServer, nil
	}
	keptUpd, keptUpdServer, err := updRun(nil)
	if err != nil {
		return fmt.Errorf("update, kept connection: %w", err)
	}
	flRoot := b.newRoot("ssh-floor")
	if _, err := b.measure(ctx, append([]string{"sh"}, b.floorArgs("first", flRoot, url, 1)...)...); err != nil {
		return err
	}
	var flUpd, flUpdServer []float64
	for i := range b.opt.reps {
		hash, err := u.Commit("ssh.txt", fmt.Sprintf("floor %d %d\n", i, time.Now().UnixNano()))
		if err != nil {
			return err
		}
		s0 := srv.cpu()
		m, err := b.flUpdate(ctx, flRoot, url, hash)
		if err != nil {
			return err
		}
		flUpd = append(flUpd, ms(m.CPU))
		flUpdServer = append(flUpdServer, ms(srv.cpu()-s0))
	}
	b.env = savedEnv
	plainUpd, _, err := updRun(plainEnv)
	if err != nil {
		return fmt.Errorf("update, plain connections: %w", err)
	}
	b.addRatio("ssh update", "small", "ssh", "client CPU", "ms", keptUpd, flUpd, sshUpdateMax, 0,
		fmt.Sprintf("git-sync with a plain connection per poll: %.1f ms", median(plainUpd)))
	b.addRatio("ssh update", "small", "ssh", "server CPU", "ms", keptUpdServer, flUpdServer, 0, 0, "")
	return nil
}
