// Package webhook turns authenticated HTTP requests into sync triggers:
// POST /webhook for the push notifications of GitHub, GitLab, Gitea,
// Forgejo and Bitbucket, and POST /sync for anyone holding the bearer
// token.
//
// The forge's part is pure functions (Identify, Verify, Kind, PushedRefs,
// Matches), tested against signatures computed the way each forge computes
// them; the handlers add the HTTP rules (methods, size limit, statuses) and
// the shared secrets, which are read from files and read again when the
// files change. Every comparison with a secret takes constant time, and no
// secret, signature or token is ever logged or echoed.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Forges, the values of the forge label of git_sync_webhook_requests_total.
const (
	GitHub    = "github"
	GitLab    = "gitlab"
	Gitea     = "gitea"
	Forgejo   = "forgejo"
	Bitbucket = "bitbucket"
	Unknown   = "unknown"
)

// Results, the values of the result label of git_sync_webhook_requests_total.
const (
	Accepted     = "accepted"
	Ignored      = "ignored"
	Unauthorized = "unauthorized"
	Malformed    = "malformed"
	TooLarge     = "too_large"
)

// Identify names the forge that sent a request, by the headers only that
// forge sends. Forgejo also sends Gitea's headers, and Gitea GitHub's, so
// the order matters.
func Identify(h http.Header) string {
	switch {
	case h.Get("X-Forgejo-Signature") != "" || h.Get("X-Forgejo-Event") != "":
		return Forgejo
	case h.Get("X-Gitea-Signature") != "" || h.Get("X-Gitea-Event") != "":
		return Gitea
	case h.Get("X-Gitlab-Event") != "" || h.Get("X-Gitlab-Token") != "":
		return GitLab
	case h.Get("X-GitHub-Event") != "":
		return GitHub
	case h.Get("X-Event-Key") != "":
		return Bitbucket
	}
	return Unknown
}

// Verify reports whether the request of forge, with headers h and body,
// was sent by someone holding secret:
//   - GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
//     the body;
//   - GitLab: X-Gitlab-Token is the secret itself;
//   - Gitea, Forgejo: X-Gitea-Signature / X-Forgejo-Signature is the hex
//     HMAC-SHA256 of the body;
//   - Bitbucket: X-Hub-Signature is "sha256=" and the hex HMAC-SHA256.
//
// An empty secret verifies nothing.
func Verify(forge string, h http.Header, body, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	switch forge {
	case GitHub:
		return hmacHex(strings.TrimPrefix(h.Get("X-Hub-Signature-256"), "sha256="), h.Get("X-Hub-Signature-256"), body, secret)
	case Bitbucket:
		return hmacHex(strings.TrimPrefix(h.Get("X-Hub-Signature"), "sha256="), h.Get("X-Hub-Signature"), body, secret)
	case Gitea:
		sig := h.Get("X-Gitea-Signature")
		return hmacHex(sig, "sha256="+sig, body, secret)
	case Forgejo:
		sig := h.Get("X-Forgejo-Signature")
		return hmacHex(sig, "sha256="+sig, body, secret)
	case GitLab:
		return equalSecret([]byte(h.Get("X-Gitlab-Token")), secret)
	}
	return false
}

// hmacHex compares hexSig with the HMAC-SHA256 of body under secret; full
// must be "sha256=" followed by hexSig (the prefix is part of the format).
func hmacHex(hexSig, full string, body, secret []byte) bool {
	if full != "sha256="+hexSig || hexSig == "" {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// equalSecret compares a presented secret with the real one in constant
// time, lengths included: both are hashed first.
func equalSecret(got, want []byte) bool {
	a, b := sha256.Sum256(got), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// EventKind is what a forge's event means for git-sync.
type EventKind int

// Event kinds.
const (
	OtherEvent EventKind = iota // anything else: answered "ignored"
	PushEvent                   // a push of branches or tags
	PingEvent                   // the forge checking that the hook works
)

// Kind classifies the event a verified request announces.
func Kind(forge string, h http.Header) EventKind {
	var ev string
	switch forge {
	case GitHub:
		ev = h.Get("X-GitHub-Event")
		if ev == "ping" {
			return PingEvent
		}
		if ev == "push" {
			return PushEvent
		}
	case GitLab:
		ev = h.Get("X-Gitlab-Event")
		if ev == "Push Hook" || ev == "Tag Push Hook" {
			return PushEvent
		}
	case Gitea, Forgejo:
		ev = h.Get("X-Gitea-Event")
		if forge == Forgejo {
			ev = h.Get("X-Forgejo-Event")
		}
		if ev == "push" {
			return PushEvent
		}
	case Bitbucket:
		ev = h.Get("X-Event-Key")
		if ev == "repo:refs_changed" || ev == "repo:push" {
			return PushEvent
		}
		if ev == "diagnostics:ping" {
			return PingEvent
		}
	}
	return OtherEvent
}

// Push is what a push event says about refs.
type Push struct {
	// Refs are the full names of the refs the push changed
	// ("refs/heads/main", "refs/tags/v1").
	Refs []string
	// DefaultBranch is the repository's default branch as the payload names
	// it (without refs/heads/), "" when the payload does not say.
	DefaultBranch string
}

// PushedRefs reads the refs a push event of forge changed.
func PushedRefs(forge string, body []byte) (Push, error) {
	var p Push
	switch forge {
	case GitHub, Gitea, Forgejo:
		var v struct {
			Ref        string `json:"ref"`
			Repository struct {
				DefaultBranch string `json:"default_branch"`
			} `json:"repository"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return p, fmt.Errorf("parse %s push payload: %w", forge, err)
		}
		p.Refs, p.DefaultBranch = []string{v.Ref}, v.Repository.DefaultBranch
	case GitLab:
		var v struct {
			Ref     string `json:"ref"`
			Project struct {
				DefaultBranch string `json:"default_branch"`
			} `json:"project"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return p, fmt.Errorf("parse gitlab push payload: %w", err)
		}
		p.Refs, p.DefaultBranch = []string{v.Ref}, v.Project.DefaultBranch
	case Bitbucket:
		// Bitbucket Data Center (repo:refs_changed) lists changes with
		// full ref names; Bitbucket Cloud (repo:push) with typed short
		// names. Neither names the default branch in every payload.
		var v struct {
			Changes []struct {
				RefID string `json:"refId"`
			} `json:"changes"`
			Push struct {
				Changes []struct {
					New *struct {
						Type string `json:"type"`
						Name string `json:"name"`
					} `json:"new"`
				} `json:"changes"`
			} `json:"push"`
			Repository struct {
				MainBranch *struct {
					Name string `json:"name"`
				} `json:"mainbranch"`
			} `json:"repository"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return p, fmt.Errorf("parse bitbucket push payload: %w", err)
		}
		for _, c := range v.Changes {
			p.Refs = append(p.Refs, c.RefID)
		}
		for _, c := range v.Push.Changes {
			switch {
			case c.New == nil: // a deleted ref
			case c.New.Type == "tag":
				p.Refs = append(p.Refs, "refs/tags/"+c.New.Name)
			default:
				p.Refs = append(p.Refs, "refs/heads/"+c.New.Name)
			}
		}
		if v.Repository.MainBranch != nil {
			p.DefaultBranch = v.Repository.MainBranch.Name
		}
	default:
		return p, fmt.Errorf("unknown forge %q", forge)
	}
	refs := p.Refs[:0]
	for _, r := range p.Refs {
		if r != "" {
			refs = append(refs, r)
		}
	}
	p.Refs = refs
	if len(p.Refs) == 0 {
		return p, fmt.Errorf("%s push payload names no ref", forge)
	}
	return p, nil
}

// Matches reports whether a push concerns --ref: a branch or tag of that
// name, or the full ref name itself. With --ref=HEAD, a push to the default
// branch named by the payload matches, and when the payload does not name
// it (some Bitbucket payloads) any branch push does: a needless fetch costs
// little, a missed one leaves the tree stale until the next poll.
func Matches(ref string, p Push) bool {
	for _, r := range p.Refs {
		if ref == "HEAD" {
			if p.DefaultBranch == "" {
				if strings.HasPrefix(r, "refs/heads/") {
					return true
				}
				continue
			}
			if r == "refs/heads/"+strings.TrimPrefix(p.DefaultBranch, "refs/heads/") {
				return true
			}
			continue
		}
		if r == ref || r == "refs/heads/"+ref || r == "refs/tags/"+ref {
			return true
		}
	}
	return false
}
