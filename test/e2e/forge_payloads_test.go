package e2e

// Push notifications as the forges send them: the headers each forge sets,
// its signature computed its own way, and a body shaped and sized like a
// real push of several commits (tens of KiB).

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// forgePush describes one push to announce.
type forgePush struct {
	Ref           string // full ref name
	Before, After string
	DefaultBranch string
	Tag           bool
}

// hookRequest is a webhook delivery ready to send.
type hookRequest struct {
	Header http.Header
	Body   []byte
}

func hexHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// fakeCommits returns n commit objects the way GitHub, Gitea and GitLab
// list them in a push payload.
func fakeCommits(n int, after string) []map[string]any {
	var out []map[string]any
	for i := 0; i < n; i++ {
		id := after
		if i < n-1 {
			id = fmt.Sprintf("%040x", i+1)
		}
		out = append(out, map[string]any{
			"id": id, "tree_id": fmt.Sprintf("%040x", i+1000), "distinct": true,
			"message":   fmt.Sprintf("Change %d: %s", i, strings.Repeat("a description of the change, ", 12)),
			"timestamp": time.Date(2026, 12, 1, 10, i, 0, 0, time.UTC).Format(time.RFC3339),
			"url":       "https://forge.example.com/org/app/commit/" + id,
			"author":    map[string]any{"name": "Dev Eloper", "email": "dev@example.com", "username": "dev"},
			"committer": map[string]any{"name": "Dev Eloper", "email": "dev@example.com", "username": "dev"},
			"added":     []string{fmt.Sprintf("src/new_%d.go", i)},
			"removed":   []string{},
			"modified":  []string{"README.md", fmt.Sprintf("src/pkg%d/file.go", i), "go.mod", "go.sum"},
		})
	}
	return out
}

func repoObject(defaultBranch string) map[string]any {
	return map[string]any{
		"id": 123456, "name": "app", "full_name": "org/app", "private": true,
		"owner":          map[string]any{"login": "org", "id": 42, "type": "Organization"},
		"html_url":       "https://forge.example.com/org/app",
		"clone_url":      "https://forge.example.com/org/app.git",
		"ssh_url":        "git@forge.example.com:org/app.git",
		"default_branch": defaultBranch,
		"description":    strings.Repeat("An application. ", 10),
		"size":           2048, "stargazers_count": 3, "watchers_count": 3, "forks_count": 1,
		"created_at": 1700000000, "pushed_at": 1764500000, "updated_at": "2026-12-01T10:00:00Z",
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// githubLikeBody is the push payload of GitHub, Gitea and Forgejo (Gitea's
// imitates GitHub's).
func githubLikeBody(p forgePush) []byte {
	commits := fakeCommits(20, p.After)
	return mustJSON(map[string]any{
		"ref": p.Ref, "before": p.Before, "after": p.After,
		"created": false, "deleted": false, "forced": false,
		"compare":     "https://forge.example.com/org/app/compare/" + p.Before[:12] + "..." + p.After[:12],
		"commits":     commits,
		"head_commit": commits[len(commits)-1],
		"repository":  repoObject(p.DefaultBranch),
		"pusher":      map[string]any{"name": "dev", "email": "dev@example.com"},
		"sender":      map[string]any{"login": "dev", "id": 7, "type": "User"},
	})
}

// githubPush signs like GitHub: X-Hub-Signature-256 over the body.
func githubPush(secret string, p forgePush) hookRequest {
	body := githubLikeBody(p)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/abc1234")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("X-Hub-Signature", "sha1=0000000000000000000000000000000000000000")
	h.Set("X-Hub-Signature-256", "sha256="+hexHMAC(secret, body))
	return hookRequest{h, body}
}

// giteaPush signs like Gitea (forgejo false) or Forgejo: a bare hex HMAC,
// with GitHub's headers beside their own.
func giteaPush(secret string, p forgePush, forgejo bool) hookRequest {
	body := githubLikeBody(p)
	sig := hexHMAC(secret, body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-Gitea-Event", "push")
	h.Set("X-Gitea-Delivery", "6f1b0c7e-5d0c-4a5e-9f5a-1c3b2a4d5e6f")
	h.Set("X-Gitea-Signature", sig)
	h.Set("X-Hub-Signature-256", "sha256="+sig)
	if forgejo {
		h.Set("X-Forgejo-Event", "push")
		h.Set("X-Forgejo-Signature", sig)
	}
	return hookRequest{h, body}
}

// gitlabPush authenticates like GitLab: the secret itself in
// X-Gitlab-Token.
func gitlabPush(secret string, p forgePush) hookRequest {
	kind, event := "push", "Push Hook"
	if p.Tag {
		kind, event = "tag_push", "Tag Push Hook"
	}
	commits := fakeCommits(20, p.After)
	body := mustJSON(map[string]any{
		"object_kind": kind, "event_name": kind,
		"before": p.Before, "after": p.After, "ref": p.Ref, "ref_protected": true,
		"checkout_sha": p.After, "user_id": 4, "user_name": "Dev Eloper", "user_username": "dev",
		"project_id": 15,
		"project": map[string]any{
			"id": 15, "name": "app", "path_with_namespace": "org/app",
			"web_url": "https://gitlab.example.com/org/app", "default_branch": p.DefaultBranch,
			"git_http_url": "https://gitlab.example.com/org/app.git",
		},
		"commits": commits, "total_commits_count": len(commits),
		"repository": map[string]any{"name": "app", "homepage": "https://gitlab.example.com/org/app"},
	})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitLab/17.6.0")
	h.Set("X-Gitlab-Event", event)
	h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
	h.Set("X-Gitlab-Webhook-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
	h.Set("X-Gitlab-Token", secret)
	return hookRequest{h, body}
}

// bitbucketPush signs like Bitbucket Data Center: X-Hub-Signature
// "sha256=" over a repo:refs_changed body.
func bitbucketPush(secret string, p forgePush) hookRequest {
	typ, display := "BRANCH", strings.TrimPrefix(p.Ref, "refs/heads/")
	if p.Tag {
		typ, display = "TAG", strings.TrimPrefix(p.Ref, "refs/tags/")
	}
	body := mustJSON(map[string]any{
		"eventKey": "repo:refs_changed", "date": "2026-12-01T10:00:00+0000",
		"actor": map[string]any{"name": "dev", "emailAddress": "dev@example.com", "id": 2, "displayName": "Dev Eloper", "slug": "dev", "type": "NORMAL"},
		"repository": map[string]any{
			"slug": "app", "id": 84, "name": "app", "scmId": "git", "state": "AVAILABLE", "forkable": true, "public": false,
			"project": map[string]any{"key": "ORG", "id": 84, "name": "Org", "type": "NORMAL"},
			"links":   map[string]any{"clone": []map[string]string{{"href": "https://bitbucket.example.com/scm/org/app.git", "name": "http"}}},
		},
		"changes": []map[string]any{{
			"ref":   map[string]any{"id": p.Ref, "displayId": display, "type": typ},
			"refId": p.Ref, "fromHash": p.Before, "toHash": p.After, "type": "UPDATE",
		}},
		"commits": fakeCommits(20, p.After), // Data Center's payload has no commit list; padding to a realistic size
	})
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("User-Agent", "Atlassian HttpClient 4.2.0 / Bitbucket-9.4.0 (9004000) / Default")
	h.Set("X-Event-Key", "repo:refs_changed")
	h.Set("X-Request-Id", "8f7a5c8e-29a6-4b2f-9d1c-3c5d3e2a1b0c")
	h.Set("X-Hub-Signature", "sha256="+hexHMAC(secret, body))
	return hookRequest{h, body}
}

// send posts r to url and returns the status and body.
func (r hookRequest) send(url string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(r.Body))
	if err != nil {
		return 0, "", err
	}
	req.Header = r.Header.Clone()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), err
}
