package e2e

// The status page, as a browser shows it: Debian's chromium (installed by
// .ci/run) loads GET /status headless; the DOM must show the published hash
// and the last error, and the screenshot must be a real picture.
// GITSYNC_STATUS_SCREENSHOT=PATH also writes the screenshot there (the
// README's docs/status-page.png is made so).

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// chromium runs headless Chromium with args and returns its stdout.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: install Debian's chromium package (apt-get install -y chromium; .ci/run does): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(errb.String(), 20))
	}
	return out.Bytes()
}

func TestStatusPageInChromium(t *testing.T) {
	t.Parallel()
	up := gittest.NewRepo(t)
	first := up.Commit(map[string]string{"README.md": "hello\n"}, "Add the deployment manifests")
	srv := gittest.HTTPServer(t, filepath.Dir(up.Dir()), gittest.HTTPOptions{})
	root := newRoot(t)
	addr := freeAddr(t)
	p := start(t, "--repo="+srv.URL(filepath.Base(up.Dir())), "--root="+root, "--link=current", "--period=300ms",
		"--max-failures=-1", "--http-bind="+addr)
	waitForLink(t, p, filepath.Join(root, "current"), first)
	srv.SetFailStatus(http.StatusServiceUnavailable)
	waitFor(t, 10*time.Second, func() bool {
		le, _ := statusDoc(t, addr)["last_error"].(string)
		return strings.Contains(le, "503")
	}, "the failure to show in /status")

	url := "http://" + addr + "/status"
	dom := string(chromium(t, "--dump-dom", url))
	for _, want := range []string{`id="hash"`, first[:12], "Add the deployment manifests", `id="last-error"`, "returned error: 503", "failing"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page Chromium rendered lacks %q:\n%s", want, dom)
		}
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, "--window-size=900,640", "--screenshot="+shot, url)
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("screenshot is %v", b)
	}
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("the screenshot has %d colours: a blank page?", len(colours))
	}
	if dst := os.Getenv("GITSYNC_STATUS_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
