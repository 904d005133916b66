package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
)

// GitHub's documentation gives this example of X-Hub-Signature-256
// ("Validating webhook deliveries"): an independent check of the algorithm,
// not one computed by the code under test.
func TestVerifyGitHubDocumentedExample(t *testing.T) {
	h := http.Header{}
	h.Set("X-GitHub-Event", "push")
	h.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	body, secret := []byte("Hello, World!"), []byte("It's a Secret to Everybody")
	if !Verify(GitHub, h, body, secret) {
		t.Fatal("GitHub's documented signature does not verify")
	}
	if Verify(GitHub, h, []byte("Hello, World?"), secret) {
		t.Error("a changed body verifies")
	}
	if Verify(GitHub, h, body, []byte("It's a secret to everybody")) {
		t.Error("another secret verifies")
	}
}

func mac(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestVerifyEachForge(t *testing.T) {
	const secret, body = "s3cret", `{"ref":"refs/heads/main"}`
	sig := mac(secret, body)
	wrong := mac("other", body)
	cases := []struct {
		name  string
		forge string
		h     http.Header
		want  bool
	}{
		{"github", GitHub, headers("X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256="+sig), true},
		{"github wrong secret", GitHub, headers("X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256="+wrong), false},
		{"github no prefix", GitHub, headers("X-GitHub-Event", "push", "X-Hub-Signature-256", sig), false},
		{"github sha1 header only", GitHub, headers("X-GitHub-Event", "push", "X-Hub-Signature", "sha256="+sig), false},
		{"github missing", GitHub, headers("X-GitHub-Event", "push"), false},
		{"github not hex", GitHub, headers("X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256=zz"+sig[2:]), false},
		{"gitlab", GitLab, headers("X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", secret), true},
		{"gitlab wrong", GitLab, headers("X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", secret+"x"), false},
		{"gitlab prefix of secret", GitLab, headers("X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", secret[:3]), false},
		{"gitlab missing", GitLab, headers("X-Gitlab-Event", "Push Hook"), false},
		{"gitea", Gitea, headers("X-Gitea-Event", "push", "X-Gitea-Signature", sig), true},
		{"gitea with prefix", Gitea, headers("X-Gitea-Event", "push", "X-Gitea-Signature", "sha256="+sig), false},
		{"gitea wrong", Gitea, headers("X-Gitea-Event", "push", "X-Gitea-Signature", wrong), false},
		{"forgejo", Forgejo, headers("X-Forgejo-Event", "push", "X-Forgejo-Signature", sig), true},
		{"forgejo gitea signature only", Forgejo, headers("X-Forgejo-Event", "push", "X-Gitea-Signature", sig), false},
		{"bitbucket", Bitbucket, headers("X-Event-Key", "repo:refs_changed", "X-Hub-Signature", "sha256="+sig), true},
		{"bitbucket wrong", Bitbucket, headers("X-Event-Key", "repo:refs_changed", "X-Hub-Signature", "sha256="+wrong), false},
		{"bitbucket missing", Bitbucket, headers("X-Event-Key", "repo:push"), false},
		{"unknown", Unknown, headers("X-Hub-Signature-256", "sha256="+sig), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Identify(c.h); got != c.forge {
				t.Fatalf("Identify = %q, want %q", got, c.forge)
			}
			if got := Verify(c.forge, c.h, []byte(body), []byte(secret)); got != c.want {
				t.Errorf("Verify = %v, want %v", got, c.want)
			}
		})
	}
	// An empty secret verifies nothing, not even an empty token.
	if Verify(GitLab, headers("X-Gitlab-Event", "Push Hook", "X-Gitlab-Token", ""), nil, nil) {
		t.Error("an empty secret verified an empty token")
	}
}

// Gitea sends GitHub's headers too, and Forgejo Gitea's: the more specific
// forge must win, or its signature would be checked against the wrong
// header.
func TestIdentifyPrefersTheSpecificForge(t *testing.T) {
	gitea := headers("X-GitHub-Event", "push", "X-Gitea-Event", "push", "X-Hub-Signature-256", "sha256=00")
	if got := Identify(gitea); got != Gitea {
		t.Errorf("Gitea's headers: %q", got)
	}
	forgejo := headers("X-GitHub-Event", "push", "X-Gitea-Event", "push", "X-Forgejo-Event", "push")
	if got := Identify(forgejo); got != Forgejo {
		t.Errorf("Forgejo's headers: %q", got)
	}
}

func TestKind(t *testing.T) {
	cases := []struct {
		forge string
		h     http.Header
		want  EventKind
	}{
		{GitHub, headers("X-GitHub-Event", "push"), PushEvent},
		{GitHub, headers("X-GitHub-Event", "ping"), PingEvent},
		{GitHub, headers("X-GitHub-Event", "issues"), OtherEvent},
		{GitLab, headers("X-Gitlab-Event", "Push Hook"), PushEvent},
		{GitLab, headers("X-Gitlab-Event", "Tag Push Hook"), PushEvent},
		{GitLab, headers("X-Gitlab-Event", "Merge Request Hook"), OtherEvent},
		{Gitea, headers("X-Gitea-Event", "push"), PushEvent},
		{Gitea, headers("X-Gitea-Event", "create"), OtherEvent},
		{Forgejo, headers("X-Forgejo-Event", "push"), PushEvent},
		{Bitbucket, headers("X-Event-Key", "repo:refs_changed"), PushEvent},
		{Bitbucket, headers("X-Event-Key", "repo:push"), PushEvent},
		{Bitbucket, headers("X-Event-Key", "diagnostics:ping"), PingEvent},
		{Bitbucket, headers("X-Event-Key", "pr:opened"), OtherEvent},
	}
	for _, c := range cases {
		if got := Kind(c.forge, c.h); got != c.want {
			t.Errorf("Kind(%s, %v) = %v, want %v", c.forge, c.h, got, c.want)
		}
	}
}

func TestPushedRefsAndMatches(t *testing.T) {
	cases := []struct {
		name, forge, body string
		ref               string
		want              bool
	}{
		{"github branch", GitHub, `{"ref":"refs/heads/main","repository":{"default_branch":"main"}}`, "main", true},
		{"github full ref", GitHub, `{"ref":"refs/heads/main","repository":{"default_branch":"main"}}`, "refs/heads/main", true},
		{"github other branch", GitHub, `{"ref":"refs/heads/dev","repository":{"default_branch":"main"}}`, "main", false},
		{"github tag", GitHub, `{"ref":"refs/tags/v1","repository":{"default_branch":"main"}}`, "v1", true},
		{"github HEAD default", GitHub, `{"ref":"refs/heads/trunk","repository":{"default_branch":"trunk"}}`, "HEAD", true},
		{"github HEAD other", GitHub, `{"ref":"refs/heads/dev","repository":{"default_branch":"trunk"}}`, "HEAD", false},
		{"github HEAD tag", GitHub, `{"ref":"refs/tags/v1","repository":{"default_branch":"trunk"}}`, "HEAD", false},
		{"gitlab", GitLab, `{"object_kind":"push","ref":"refs/heads/main","project":{"default_branch":"main"}}`, "HEAD", true},
		{"gitlab tag", GitLab, `{"object_kind":"tag_push","ref":"refs/tags/v2","project":{"default_branch":"main"}}`, "v2", true},
		{"gitea", Gitea, `{"ref":"refs/heads/main","repository":{"default_branch":"main"}}`, "HEAD", true},
		{"forgejo other", Forgejo, `{"ref":"refs/heads/x","repository":{"default_branch":"main"}}`, "HEAD", false},
		{"bitbucket dc", Bitbucket, `{"eventKey":"repo:refs_changed","changes":[{"ref":{"id":"refs/heads/main","type":"BRANCH"},"refId":"refs/heads/main"}]}`, "main", true},
		{"bitbucket dc HEAD unknown default", Bitbucket, `{"changes":[{"refId":"refs/heads/feature"}]}`, "HEAD", true},
		{"bitbucket dc tag HEAD", Bitbucket, `{"changes":[{"refId":"refs/tags/v1"}]}`, "HEAD", false},
		{"bitbucket cloud", Bitbucket, `{"push":{"changes":[{"new":{"type":"branch","name":"main"}}]}}`, "main", true},
		{"bitbucket cloud tag", Bitbucket, `{"push":{"changes":[{"new":{"type":"tag","name":"v3"}}]}}`, "v3", true},
		{"bitbucket cloud deleted", Bitbucket, `{"push":{"changes":[{"new":null},{"new":{"type":"branch","name":"dev"}}]}}`, "main", false},
		{"hash ref never matches", GitHub, `{"ref":"refs/heads/main"}`, "0123456789abcdef0123456789abcdef01234567", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := PushedRefs(c.forge, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := Matches(c.ref, p); got != c.want {
				t.Errorf("Matches(%q, %+v) = %v, want %v", c.ref, p, got, c.want)
			}
		})
	}
	for _, bad := range []string{`{"ref":`, `[]`, `{"ref":""}`, `{"ref":42}`} {
		if _, err := PushedRefs(GitHub, []byte(bad)); err == nil {
			t.Errorf("PushedRefs(%s) accepted a malformed payload", bad)
		}
	}
}
