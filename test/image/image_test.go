// Package image tests the container image that deploy/image/build.sh
// builds: TestMain builds it once per run (from Debian packages, offline from
// registries) and every test runs it with podman as a pod would run it,
// against git servers on the host reached over --network=host.
//
// The tests are skipped, with the reason printed, only when podman cannot
// run a container at all; .ci/run installs podman, runc, buildah, mmdebstrap
// and uidmap. Set GITSYNC_TEST_IMAGE_CACHE to a directory to keep the root
// filesystem tarball between local runs (CI starts clean).
package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// imageName is the image TestMain built; skipReason is set instead when
// podman cannot run containers here.
var (
	imageName  string
	skipReason string
	// builtVersion is the --version line build.sh reported for the image.
	builtVersion string
)

// podmanBase is how containers run on these machines: the cgroups are
// hybrid, so runc with cgroupfs, and the default rlimits exceed the hard
// limits, so explicit ones.
var podmanBase = []string{"--runtime=runc", "--cgroup-manager=cgroupfs"}

var runFlags = []string{"--network=host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}

const deadline = 30 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if _, err := exec.LookPath("podman"); err != nil {
		skipReason = "podman is not installed (apt-get install -y podman runc buildah mmdebstrap uidmap)"
	} else if out, err := exec.Command("podman", append(podmanBase, "info")...).CombinedOutput(); err != nil {
		skipReason = fmt.Sprintf("podman cannot run here: %v\n%s", err, out)
	}
	if skipReason != "" {
		fmt.Fprintln(os.Stderr, "image: SKIPPING the image tests:", skipReason)
		return m.Run()
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		return 1
	}
	imageName = fmt.Sprintf("localhost/git-sync-test:%d", os.Getpid())
	args := []string{filepath.Join(root, "deploy/image/build.sh"), "--tag", imageName}
	if dir := os.Getenv("GITSYNC_TEST_IMAGE_CACHE"); dir != "" {
		args = append(args, "--cache", dir)
	}
	start := time.Now()
	build := exec.Command("bash", args...)
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "image: FAIL: deploy/image/build.sh: %v\n%s\n", err, out.String())
		return 1
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "build.sh: ") && !strings.Contains(line, "Chrooting") {
			fmt.Fprintln(os.Stderr, "image:", line)
		}
	}
	fmt.Fprintf(os.Stderr, "image: built %s in %.0f s\n", imageName, time.Since(start).Seconds())
	if m := regexp.MustCompile(`build.sh: binary (\S+) \((\S+)\)`).FindStringSubmatch(out.String()); m != nil {
		builtVersion = "git-sync " + m[1] + " (" + m[2] + ")"
	}
	code := m.Run()
	exec.Command("podman", append(podmanBase, "rmi", "-f", imageName)...).Run()
	return code
}

func needPodman(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// podman runs podman with args and returns its combined output.
func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", append(append([]string{}, podmanBase...), args...)...).CombinedOutput()
	return string(out), err
}

// runImage runs the image to completion with the given podman run options,
// then "--" and git-sync's arguments.
func runImage(t *testing.T, opts []string, args ...string) (string, error) {
	t.Helper()
	a := append([]string{"run", "--rm"}, runFlags...)
	a = append(a, opts...)
	a = append(a, imageName)
	return podman(t, append(a, args...)...)
}

// startImage starts the image in the background and returns the
// container's name; it is removed when the test ends.
func startImage(t *testing.T, opts []string, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("gitsync-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	a := append([]string{"run", "-d", "--name", name}, runFlags...)
	a = append(a, opts...)
	a = append(a, imageName)
	if out, err := podman(t, append(a, args...)...); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := podman(t, "logs", name)
			t.Logf("logs of %s:\n%s", name, logs)
		}
		podman(t, "rm", "-f", "-t", "0", name)
	})
	return name
}

// volume returns a host directory for /git owned by uid:gid with mode
// (permission bits plus setuid/setgid/sticky, as chmod(2) takes them).
func volume(t *testing.T, uid, gid int, mode uint32) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "git")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// syscall.Chmod: os.Chmod ignores the raw setgid bit of 0o2775.
	if err := syscall.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// linkHash returns the commit the link under root publishes, "" if none.
func linkHash(root, link string) string {
	target, err := os.Readlink(filepath.Join(root, link))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func waitForHash(t *testing.T, root, link, want string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if linkHash(root, link) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/%s publishes %q, want %s", root, link, linkHash(root, link), want)
}

func TestVersionIsStamped(t *testing.T) {
	needPodman(t)
	out, err := runImage(t, nil, "--version")
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	got := strings.TrimSpace(out)
	if builtVersion == "" || got != builtVersion {
		t.Errorf("--version printed %q, want %q (what build.sh stamped)", got, builtVersion)
	}
	if strings.Contains(got, "(devel)") {
		t.Errorf("--version printed %q: the build was not stamped", got)
	}
}

// TestOneTimeAsImageUser runs the image as its own user (65533) with
// --one-time against a git daemon on the host.
func TestOneTimeAsImageUser(t *testing.T) {
	needPodman(t)
	up, head := gittest.NewRepoWithCommit(t)
	d := gittest.GitDaemon(t, filepath.Dir(up.Dir()))
	root := volume(t, 65533, 65533, 0o755)
	out, err := runImage(t, []string{"-v", root + ":/git"},
		"--repo="+d.URL(filepath.Base(up.Dir())), "--root=/git", "--link=repo", "--one-time")
	if err != nil {
		t.Fatalf("--one-time: %v\n%s", err, out)
	}
	if got := linkHash(root, "repo"); got != head {
		t.Fatalf("published %q, want %s\n%s", got, head, out)
	}
}

// TestArbitraryUIDReadOnlyDaemon runs the image as a UID the image does not
// know, with a read-only root filesystem and a tmpfs /tmp (what a pod with
// readOnlyRootFilesystem and an emptyDir gets, and what OpenShift's
// restricted policy does), as a daemon against a smart-HTTP server with
// credentials: it publishes, follows a push, and exits 0 on SIGTERM.
func TestArbitraryUIDReadOnlyDaemon(t *testing.T) {
	needPodman(t)
	up, head := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{Username: "u", Password: "s3cret-token"})
	const uid = 1000650000
	root := volume(t, uid, 0, 0o770)
	name := startImage(t, []string{
		"--user", strconv.Itoa(uid) + ":0", "--read-only", "--read-only-tmpfs=false",
		"--tmpfs", "/tmp:rw,mode=1777", "-v", root + ":/git",
		"-e", "GITSYNC_PASSWORD=s3cret-token",
	},
		"--repo="+srv.URL(filepath.Base(up.Dir())), "--root=/git", "--link=repo",
		"--period=200ms", "--username=u")
	waitForHash(t, root, "repo", head)
	next := up.Commit(map[string]string{"next.txt": "next\n"}, "next")
	waitForHash(t, root, "repo", next)

	start := time.Now()
	if out, err := podman(t, "kill", "--signal", "TERM", name); err != nil {
		t.Fatalf("podman kill: %v\n%s", err, out)
	}
	out, err := podman(t, "wait", name)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("podman wait: %v\n%s", err, out)
	}
	if code := strings.TrimSpace(out); code != "0" {
		t.Fatalf("exit status after SIGTERM: %s, want 0", code)
	}
	// A correctness bound, not a speed target: git-sync as PID 1 must
	// act on SIGTERM itself instead of waiting for the runtime's SIGKILL.
	if took > 3*time.Second {
		t.Errorf("exiting after SIGTERM took %v, want under 3 s", took)
	}
	t.Logf("SIGTERM to exit: %v", took)
}

// TestSSHFromImage syncs over ssh from inside the image, with the key and
// known_hosts mounted read-only as a Secret would be.
func TestSSHFromImage(t *testing.T) {
	needPodman(t)
	up, head := gittest.NewRepoWithCommit(t)
	sshd := gittest.SSHD(t, gittest.SSHDOptions{})
	secrets := t.TempDir()
	if err := os.Chmod(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{sshd.KeyFile(): "ssh", sshd.KnownHostsFile(): "known_hosts"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		// Owned by root and readable by the pod's group, as a Secret
		// volume with defaultMode 0440 and fsGroup gives it.
		if err := os.WriteFile(filepath.Join(secrets, dst), b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	root := volume(t, 65533, 65533, 0o755)
	out, err := runImage(t, []string{"-v", root + ":/git", "-v", secrets + ":/etc/git-secret:ro"},
		"--repo="+sshd.URL(up.Dir()), "--root=/git", "--link=repo", "--one-time",
		"--ssh-key-file=/etc/git-secret/ssh", "--ssh-known-hosts-file=/etc/git-secret/known_hosts")
	if err != nil {
		t.Fatalf("ssh --one-time: %v\n%s", err, out)
	}
	if got := linkHash(root, "repo"); got != head {
		t.Fatalf("published %q, want %s\n%s", got, head, out)
	}
}

// TestGroupWriteSharedVolume gives the volume fsGroup semantics (owned by a
// group, setgid, group-writable; every container has the group as a
// supplementary group): with --group-write, another UID in that group can
// read the published tree and write beside it.
func TestGroupWriteSharedVolume(t *testing.T) {
	needPodman(t)
	up, head := gittest.NewRepoWithCommit(t)
	up.Commit(map[string]string{"dags/a.py": "print('a')\n"}, "dag")
	head = up.Head("HEAD")
	d := gittest.GitDaemon(t, filepath.Dir(up.Dir()))
	const fsGroup = 4242
	root := volume(t, 0, fsGroup, 0o2775)
	out, err := runImage(t, []string{"--user", "5000:5000", "--group-add", strconv.Itoa(fsGroup), "-v", root + ":/git"},
		"--repo="+d.URL(filepath.Base(up.Dir())), "--root=/git", "--link=repo", "--one-time", "--group-write")
	if err != nil {
		t.Fatalf("--group-write --one-time: %v\n%s", err, out)
	}
	if got := linkHash(root, "repo"); got != head {
		t.Fatalf("published %q, want %s\n%s", got, head, out)
	}
	out, err = runImage(t, []string{"--user", "6000:6000", "--group-add", strconv.Itoa(fsGroup), "-v", root + ":/git",
		"--entrypoint", "/bin/sh"},
		"-c", "cat /git/repo/dags/a.py && touch /git/repo/dags/written-by-consumer")
	if err != nil {
		t.Fatalf("another UID of the group could not read and write the tree: %v\n%s", err, out)
	}
	if !strings.Contains(out, "print('a')") {
		t.Errorf("read %q", out)
	}
}

// TestAirflowChartShape runs the image as the official Airflow chart does
// with deploy/airflow/official-chart-values.yaml: UID 65533, both spellings
// of the variables, --add-user, credentials from the environment, and a
// read-only root filesystem with no volume at /tmp (the credential socket
// then goes to /dev/shm).
func TestAirflowChartShape(t *testing.T) {
	needPodman(t)
	up, head := gittest.NewRepoWithCommit(t)
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{Username: "u", Password: "tok"})
	root := volume(t, 65533, 65533, 0o755)
	url := srv.URL(filepath.Base(up.Dir()))
	opts := []string{"--read-only", "--read-only-tmpfs=false", "-v", root + ":/git"}
	for _, kv := range []string{
		"GIT_SYNC_USERNAME=u", "GITSYNC_USERNAME=u", "GIT_SYNC_PASSWORD=tok", "GITSYNC_PASSWORD=tok",
		"GIT_SYNC_REV=HEAD", "GITSYNC_REF=main", "GIT_SYNC_BRANCH=main",
		"GIT_SYNC_REPO=" + url, "GITSYNC_REPO=" + url, "GIT_SYNC_DEPTH=1", "GITSYNC_DEPTH=1",
		"GIT_SYNC_ROOT=/git", "GITSYNC_ROOT=/git", "GIT_SYNC_DEST=repo", "GITSYNC_LINK=repo",
		"GIT_SYNC_ADD_USER=true", "GITSYNC_ADD_USER=true", "GITSYNC_PERIOD=30s",
		"GIT_SYNC_MAX_SYNC_FAILURES=-1", "GITSYNC_MAX_FAILURES=-1",
		"GIT_SYNC_ONE_TIME=true", "GITSYNC_ONE_TIME=true",
	} {
		opts = append(opts, "-e", kv)
	}
	out, err := runImage(t, opts)
	if err != nil {
		t.Fatalf("as the Airflow chart runs it: %v\n%s", err, out)
	}
	if got := linkHash(root, "repo"); got != head {
		t.Fatalf("published %q, want %s\n%s", got, head, out)
	}
}
