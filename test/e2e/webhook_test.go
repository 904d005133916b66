package e2e

// POST /webhook and POST /sync (issue 12): each forge's signed push
// triggers exactly one sync that publishes the pushed commit; bad requests
// get their status and trigger nothing; secrets rotate through their
// files; any number of triggers during a sync cause exactly one more.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitsync/internal/gittest"
)

// rotateFile replaces path's content the way Kubernetes updates a mounted
// Secret: a new file renamed over the old one.
func rotateFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// postSync sends POST /sync with the given Authorization header ("" for
// none).
func postSync(t testing.TB, addr, auth string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/sync", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sendHook(t testing.TB, addr string, r hookRequest) (int, string) {
	t.Helper()
	code, body, err := r.send("http://" + addr + "/webhook")
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func TestWebhookEachForgeTriggersOneSync(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	secrets := t.TempDir()
	secretFile, tokenFile := filepath.Join(secrets, "webhook"), filepath.Join(secrets, "token")
	rotateFile(t, secretFile, "hook-secret-1\n")
	rotateFile(t, tokenFile, "token-1\n")
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=1h", "--ref=HEAD",
		"--webhook-secret-file=" + secretFile, "--sync-token-file=" + tokenFile})...)
	waitForLink(t, p, link, hs[0])
	waitForMetric(t, addr, func(v float64) bool { return v == 1 }, "the first sync", "git_sync_count_total", "status", "success")

	syncs := 1.0
	prev := hs[0]
	push := func(make func(secret string, p forgePush) hookRequest, name string) {
		t.Helper()
		next := up.Commit(map[string]string{"file.txt": name + "\n"}, "push for "+name)
		req := make("hook-secret-1", forgePush{Ref: "refs/heads/" + gittest.DefaultBranch, Before: prev, After: next, DefaultBranch: gittest.DefaultBranch})
		if len(req.Body) < 16<<10 {
			t.Fatalf("%s payload is %d bytes; forges send tens of KiB for a push like this", name, len(req.Body))
		}
		code, body := sendHook(t, addr, req)
		if code != http.StatusAccepted || !strings.Contains(body, "accepted") {
			t.Fatalf("%s push: %d %q, want 202 accepted", name, code, body)
		}
		waitForLink(t, p, link, next)
		syncs++
		waitForMetric(t, addr, func(v float64) bool { return v == syncs }, name+"'s sync", "git_sync_count_total", "status", "success")
		if n := metric(t, addr, "git_sync_webhook_requests_total", "forge", name, "result", "accepted"); n != 1 {
			t.Errorf("git_sync_webhook_requests_total{forge=%q,result=accepted} = %v, want 1", name, n)
		}
		prev = next
	}
	push(githubPush, "github")
	push(gitlabPush, "gitlab")
	push(func(s string, p forgePush) hookRequest { return giteaPush(s, p, false) }, "gitea")
	push(func(s string, p forgePush) hookRequest { return giteaPush(s, p, true) }, "forgejo")
	push(bitbucketPush, "bitbucket")
	if n := metric(t, addr, "git_sync_triggers_total", "source", "webhook"); n != 5 {
		t.Errorf("git_sync_triggers_total{source=webhook} = %v, want 5", n)
	}

	// Requests that must trigger nothing.
	pushTo := func(ref string) forgePush {
		return forgePush{Ref: ref, Before: prev, After: prev, DefaultBranch: gittest.DefaultBranch}
	}
	main := pushTo("refs/heads/" + gittest.DefaultBranch)
	noSig := githubPush("hook-secret-1", main)
	noSig.Header.Del("X-Hub-Signature-256")
	huge := githubPush("hook-secret-1", main)
	huge.Body = append(huge.Body[:len(huge.Body)-1], []byte(`,"padding":"`+strings.Repeat("x", 2<<20)+`"}`)...)
	huge.Header.Set("X-Hub-Signature-256", "sha256="+hexHMAC("hook-secret-1", huge.Body))
	signedTruncated := githubPush("hook-secret-1", main)
	signedTruncated.Body = signedTruncated.Body[:len(signedTruncated.Body)/2]
	signedTruncated.Header.Set("X-Hub-Signature-256", "sha256="+hexHMAC("hook-secret-1", signedTruncated.Body))
	bad := []struct {
		name   string
		req    hookRequest
		status int
	}{
		{"github, wrong secret", githubPush("wrong", main), 401},
		{"gitlab, wrong secret", gitlabPush("wrong", main), 401},
		{"gitea, wrong secret", giteaPush("wrong", main, false), 401},
		{"forgejo, wrong secret", giteaPush("wrong", main, true), 401},
		{"bitbucket, wrong secret", bitbucketPush("wrong", main), 401},
		{"github, no signature header", noSig, 401},
		{"github, body over 1 MiB", huge, 413},
		{"github, signed truncated JSON", signedTruncated, 400},
		{"github, push to another branch", githubPush("hook-secret-1", pushTo("refs/heads/feature")), 202},
		{"gitlab, tag push (--ref=HEAD)", gitlabPush("hook-secret-1", forgePush{Ref: "refs/tags/v9", Before: prev, After: prev, DefaultBranch: gittest.DefaultBranch, Tag: true}), 202},
	}
	for _, b := range bad {
		code, body := sendHook(t, addr, b.req)
		if code != b.status {
			t.Errorf("%s: %d %q, want %d", b.name, code, body, b.status)
		}
		if code == 202 && !strings.Contains(body, "ignored") {
			t.Errorf("%s: body %q does not say the push was ignored", b.name, body)
		}
		if strings.Contains(body, "hook-secret") {
			t.Errorf("%s: the answer shows the secret: %q", b.name, body)
		}
	}
	// A body cut short on the wire: the declared length never arrives.
	if code := sendTruncated(t, addr, githubPush("hook-secret-1", main)); code != 400 {
		t.Errorf("a body shorter than its Content-Length: %d, want 400", code)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		req, _ := http.NewRequest(method, "http://"+addr+"/webhook", nil)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Errorf("%s /webhook: %d, want 405", method, resp.StatusCode)
		}
	}
	// Triggers are counted before the answer is sent: nothing more may have
	// been counted, nor synced.
	if n := metric(t, addr, "git_sync_triggers_total", "source", "webhook"); n != 5 {
		t.Errorf("after the rejected requests git_sync_triggers_total{source=webhook} = %v, want still 5", n)
	}
	for result, want := range map[string]float64{"unauthorized": 2, "too_large": 1, "malformed": 2, "ignored": 1} {
		if n := metric(t, addr, "git_sync_webhook_requests_total", "forge", "github", "result", result); n != want {
			t.Errorf("git_sync_webhook_requests_total{forge=github,result=%s} = %v, want %v", result, n, want)
		}
	}

	// Secret rotation: the old secret stops working, the new one works.
	rotateFile(t, secretFile, "hook-secret-2\n")
	if code, _ := sendHook(t, addr, githubPush("hook-secret-1", main)); code != 401 {
		t.Errorf("the old secret after rotation: %d, want 401", code)
	}
	next := up.Commit(map[string]string{"file.txt": "rotated\n"}, "after rotation")
	if code, _ := sendHook(t, addr, gitlabPush("hook-secret-2", forgePush{Ref: "refs/heads/" + gittest.DefaultBranch, Before: prev, After: next, DefaultBranch: gittest.DefaultBranch})); code != 202 {
		t.Errorf("the new secret after rotation: %d, want 202", code)
	}
	waitForLink(t, p, link, next)

	// POST /sync with its token, rotated the same way.
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "Bearer token-1x": 401, "Basic dG9rZW4tMQ==": 401} {
		if code := postSync(t, addr, auth); code != want {
			t.Errorf("POST /sync with %q: %d, want %d", auth, code, want)
		}
	}
	if n := metric(t, addr, "git_sync_triggers_total", "source", "http"); n != 0 {
		t.Errorf("refused sync requests were counted as triggers: %v", n)
	}
	next = up.Commit(map[string]string{"file.txt": "by /sync\n"}, "by /sync")
	if code := postSync(t, addr, "Bearer token-1"); code != 202 {
		t.Fatalf("POST /sync with the token: %d, want 202", code)
	}
	waitForLink(t, p, link, next)
	rotateFile(t, tokenFile, "token-2")
	if code := postSync(t, addr, "Bearer token-1"); code != 401 {
		t.Errorf("the old token after rotation: %d, want 401", code)
	}
	if code := postSync(t, addr, "Bearer token-2"); code != 202 {
		t.Errorf("the new token after rotation: %d, want 202", code)
	}
	if logs := p.Logs(); strings.Contains(logs, "hook-secret") || strings.Contains(logs, "token-1") || strings.Contains(logs, "token-2") {
		t.Errorf("a secret reached the log:\n%s", tail(logs, 20))
	}
}

// sendTruncated sends r with a Content-Length larger than the body it then
// sends, and closes its side; it returns the status of the answer.
func sendTruncated(t testing.TB, addr string, r hookRequest) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST /webhook HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n", addr, len(r.Body))
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(r.Body[:len(r.Body)/2])
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A tag push triggers a sync of --ref naming that tag.
func TestWebhookTagPush(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	up.Tag("release", hs[0])
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr := freeAddr(t)
	secretFile := filepath.Join(t.TempDir(), "webhook")
	rotateFile(t, secretFile, "s")
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=1h", "--ref=release",
		"--webhook-secret-file=" + secretFile})...)
	waitForLink(t, p, link, hs[0])
	prev := hs[0]
	gitea := func(s string, p forgePush) hookRequest { return giteaPush(s, p, false) }
	forgejo := func(s string, p forgePush) hookRequest { return giteaPush(s, p, true) }
	for _, forge := range []func(string, forgePush) hookRequest{githubPush, gitlabPush, gitea, forgejo, bitbucketPush} {
		next := up.Commit(map[string]string{"file.txt": prev + "\n"}, "next release")
		up.Tag("release", next)
		code, body := sendHook(t, addr, forge("s", forgePush{Ref: "refs/tags/release", Before: prev, After: next, DefaultBranch: gittest.DefaultBranch, Tag: true}))
		if code != 202 || !strings.Contains(body, "accepted") {
			t.Fatalf("tag push: %d %q", code, body)
		}
		waitForLink(t, p, link, next)
		prev = next
	}
	waitForMetric(t, addr, func(v float64) bool { return v >= 6 }, "six successful syncs", "git_sync_count_total", "status", "success")
	if n := metric(t, addr, "git_sync_count_total", "status", "success"); n != 6 {
		t.Errorf("%v successful syncs, want 6 (the first and one per tag push)", n)
	}
}

// 100 valid requests during a slow sync cause exactly one more sync, and
// --webhook-bind serves the triggers apart from metrics and readiness.
func TestWebhookTriggersCoalesce(t *testing.T) {
	t.Parallel()
	up, hs := linearRepo(t, 1)
	root := newRoot(t)
	link := filepath.Join(root, "link")
	addr, hookAddr := freeAddr(t), freeAddr(t)
	secretFile := filepath.Join(t.TempDir(), "webhook")
	rotateFile(t, secretFile, "s")
	w := gitWrapper(t, wrapperOpts{SleepCmd: "fetch", Sleep: 2 * time.Second})
	p := start(t, concat(syncArgs(up, root), metricsArgs(addr), []string{"--period=1h", "--ref=" + gittest.DefaultBranch,
		"--git=" + w.Path, "--webhook-secret-file=" + secretFile, "--webhook-bind=" + hookAddr})...)
	waitForLink(t, p, link, hs[0])

	if code, _, _ := httpGet(addr, "/webhook"); code != 404 {
		t.Errorf("/webhook on --http-bind with --webhook-bind set: %d, want 404", code)
	}
	for _, path := range []string{"/metrics", "/status", "/"} {
		if code, _, _ := httpGet(hookAddr, path); code != 404 {
			t.Errorf("%s on --webhook-bind: %d, want 404", path, code)
		}
	}

	c1 := up.Commit(map[string]string{"file.txt": "c1\n"}, "c1")
	ref := "refs/heads/" + gittest.DefaultBranch
	if code, _ := sendHook(t, hookAddr, githubPush("s", forgePush{Ref: ref, Before: hs[0], After: c1, DefaultBranch: gittest.DefaultBranch})); code != 202 {
		t.Fatalf("first push: %d", code)
	}
	waitFor(t, 10*time.Second, func() bool { return w.CountCalls("fetch") == 2 }, "the triggered sync to start fetching")
	c2 := up.Commit(map[string]string{"file.txt": "c2\n"}, "c2")
	req := githubPush("s", forgePush{Ref: ref, Before: c1, After: c2, DefaultBranch: gittest.DefaultBranch})
	var wg sync.WaitGroup
	codes := make([]int, 100)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = req.send("http://" + hookAddr + "/webhook")
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 202 {
			t.Fatalf("request %d of 100: %d, want 202", i, c)
		}
	}
	if n := w.CountCalls("fetch"); n != 2 {
		t.Fatalf("the sync ended before the 100 requests were answered (%d fetches): this test needs them to arrive during it", n)
	}
	waitForLink(t, p, link, c2)
	waitFor(t, 10*time.Second, func() bool { return w.CountCalls("fetch") == 3 }, "the one coalesced sync")
	if !holdsFor(3*time.Second, func() bool { return w.CountCalls("fetch") == 3 }) {
		t.Errorf("%d fetches: the 100 requests caused more than one more sync", w.CountCalls("fetch"))
	}
	if n := metric(t, addr, "git_sync_triggers_total", "source", "webhook"); n != 101 {
		t.Errorf("git_sync_triggers_total{source=webhook} = %v, want 101 (every request counts, coalesced or not)", n)
	}
}
