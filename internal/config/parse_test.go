package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitsync/internal/secret"
)

// fakeGit writes an executable script to a temporary directory and returns
// its absolute path, for --git.
func fakeGit(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "git")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// baseArgs are the flags every valid configuration needs.
func baseArgs(t *testing.T) []string {
	return []string{"--repo=https://host/org/repo.git", "--root=/tmp/root", "--git=" + fakeGit(t)}
}

// defaultConfig is what baseArgs parse to.
func defaultConfig(git string) Config {
	return Config{
		Repo:              "https://host/org/repo.git",
		Ref:               "HEAD",
		Root:              "/tmp/root",
		Link:              "repo.git",
		Period:            10 * time.Second,
		InitPeriod:        10 * time.Second,
		SyncTimeout:       120 * time.Second,
		Depth:             1,
		Submodules:        SubmodulesRecursive,
		GitGC:             GCAlways,
		Git:               git,
		ExecHook:          HookConfig{Timeout: 30 * time.Second, Backoff: 3 * time.Second},
		PrePublishHook:    HookConfig{Timeout: 30 * time.Second, Backoff: 3 * time.Second},
		PublishGate:       HookConfig{Timeout: time.Minute},
		ServeMaxRequests:  32,
		Webhook:           WebhookConfig{Method: "POST", SuccessStatus: 200, Timeout: time.Second, Backoff: 3 * time.Second},
		SSHKeyFiles:       []string{"/etc/git-secret/ssh"},
		SSHKnownHosts:     true,
		SSHKnownHostsFile: "/etc/git-secret/known_hosts",
		GitHubApp:         GitHubAppConfig{BaseURL: "https://api.github.com/"},
	}
}

// mustParse parses base arguments plus args and env, failing on error.
func mustParse(t *testing.T, args []string, env ...string) *Result {
	t.Helper()
	r, err := Parse(append(baseArgs(t), args...), env)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", args, env, err)
	}
	if r.Action != ActionRun {
		t.Fatalf("Parse(%q, %q): action %v, want run", args, env, r.Action)
	}
	return r
}

// parseErr parses base arguments plus args and env and returns the error
// text, failing if there is none.
func parseErr(t *testing.T, args []string, env ...string) error {
	t.Helper()
	_, err := Parse(append(baseArgs(t), args...), env)
	if err == nil {
		t.Fatalf("Parse(%q, %q): no error", args, env)
	}
	return err
}

// compare fails with the differing fields when got != want.
func compare(t *testing.T, got, want Config) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s = %#v, want %#v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
}

func TestDefaults(t *testing.T) {
	args := baseArgs(t)
	r, err := Parse(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, r.Config, defaultConfig(strings.TrimPrefix(args[2], "--git=")))
	if len(r.Warnings) != 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
}

// TestHelpDefaultsMatch checks that the default each option shows in
// --help is the value it really starts with.
func TestHelpDefaultsMatch(t *testing.T) {
	for _, o := range newParser(nil).opts {
		if o.def == "" || strings.Contains(o.def, " ") || strings.HasPrefix(o.def, "--") {
			continue
		}
		fresh := newParser(nil).byName[o.name].value
		before := fresh.String()
		if err := fresh.Set(o.def); err != nil {
			t.Errorf("--%s: default %q does not parse: %v", o.name, o.def, err)
			continue
		}
		if after := fresh.String(); after != before {
			t.Errorf("--%s: help says default %q (%s), but it starts as %s", o.name, o.def, after, before)
		}
	}
}

// settingCases give, for every option that has an environment variable, a
// value and its effect on the default Config.
var settingCases = []struct {
	name  string
	value string
	mod   func(c *Config)
}{
	{"repo", "https://other/x/y", func(c *Config) { c.Repo, c.Link = "https://other/x/y", "y" }},
	{"ref", "main", func(c *Config) { c.Ref = "main" }},
	{"root", "/srv/git", func(c *Config) { c.Root = "/srv/git" }},
	{"link", "current", func(c *Config) { c.Link = "current" }},
	{"period", "30s", func(c *Config) { c.Period, c.InitPeriod = 30*time.Second, 30*time.Second }},
	{"init-period", "1s", func(c *Config) { c.InitPeriod = time.Second }},
	{"sync-timeout", "2m", func(c *Config) { c.SyncTimeout = 2 * time.Minute }},
	{"max-failures", "-1", func(c *Config) { c.MaxFailures, c.InitMaxFailures = -1, -1 }},
	{"init-max-failures", "5", func(c *Config) { c.InitMaxFailures = 5 }},
	{"one-time", "true", func(c *Config) { c.OneTime = true }},
	{"depth", "0", func(c *Config) { c.Depth = 0 }},
	{"filter", "blob:none", func(c *Config) { c.Filter = "blob:none" }},
	{"submodules", "shallow", func(c *Config) { c.Submodules = SubmodulesShallow }},
	{"sparse-checkout-file", "/etc/sparse", func(c *Config) { c.SparseCheckoutFile = "/etc/sparse" }},
	{"git-gc", "aggressive", func(c *Config) { c.GitGC = GCAggressive }},
	{"git-config", "a.b:c,d.e:f", func(c *Config) {
		c.GitConfig = []GitConfigEntry{{Key: "a.b", Value: "c"}, {Key: "d.e", Value: "f"}}
	}},
	{"git-config-add", "a.b:c", func(c *Config) { c.GitConfig = []GitConfigEntry{{Key: "a.b", Value: "c", Add: true}} }},
	{"stale-worktree-timeout", "1h", func(c *Config) { c.StaleWorktreeTimeout = time.Hour }},
	{"touch-file", "done", func(c *Config) { c.TouchFile = "done" }},
	{"error-file", "/tmp/err.json", func(c *Config) { c.ErrorFile = "/tmp/err.json" }},
	{"group-write", "true", func(c *Config) { c.GroupWrite = true }},
	{"add-user", "1", func(c *Config) { c.AddUser = true }},
	{"sync-on-signal", "SIGHUP", func(c *Config) { c.SyncOnSignal = syscall.SIGHUP }},
	{"exechook-command", "/bin/hook", func(c *Config) { c.ExecHook.Command = "/bin/hook" }},
	{"exechook-timeout", "1m", func(c *Config) { c.ExecHook.Timeout = time.Minute }},
	{"exechook-backoff", "5s", func(c *Config) { c.ExecHook.Backoff = 5 * time.Second }},
	{"pre-publish-exechook-command", "/bin/pre", func(c *Config) { c.PrePublishHook.Command = "/bin/pre" }},
	{"pre-publish-exechook-timeout", "1m", func(c *Config) { c.PrePublishHook.Timeout = time.Minute }},
	{"pre-publish-exechook-backoff", "5s", func(c *Config) { c.PrePublishHook.Backoff = 5 * time.Second }},
	{"publish-gate-command", "/bin/gate", func(c *Config) { c.PublishGate.Command = "/bin/gate" }},
	{"publish-gate-timeout", "5s", func(c *Config) { c.PublishGate.Timeout = 5 * time.Second }},
	{"keep-worktrees", "5", func(c *Config) { c.KeepWorktrees = 5 }},
	{"serve-bind", ":8080", func(c *Config) { c.ServeBind = ":8080" }},
	{"serve-max-requests", "0", func(c *Config) { c.ServeMaxRequests = 0 }},
	{"webhook-url", "http://hook/x", func(c *Config) { c.Webhook.URL = "http://hook/x" }},
	{"webhook-method", "PUT", func(c *Config) { c.Webhook.Method = "PUT" }},
	{"webhook-success-status", "204", func(c *Config) { c.Webhook.SuccessStatus = 204 }},
	{"webhook-timeout", "10s", func(c *Config) { c.Webhook.Timeout = 10 * time.Second }},
	{"webhook-backoff", "10s", func(c *Config) { c.Webhook.Backoff = 10 * time.Second }},
	{"credential", `{"url":"https://h","username":"u","password-file":"/p"}`, func(c *Config) {
		c.Credentials = []Credential{{URL: "https://h", Username: "u", PasswordFile: "/p"}}
	}},
	{"askpass-url", "http://askpass/", func(c *Config) { c.AskpassURL = "http://askpass/" }},
	{"cookie-file", "true", func(c *Config) { c.CookieFile = true }},
	{"ssh-key-file", "/k1", func(c *Config) { c.SSHKeyFiles = []string{"/k1"} }},
	{"ssh-known-hosts", "false", func(c *Config) { c.SSHKnownHosts = false }},
	{"ssh-known-hosts-file", "/kh", func(c *Config) { c.SSHKnownHostsFile = "/kh" }},
	{"github-base-url", "https://ghe.example/api/v3", func(c *Config) { c.GitHubApp.BaseURL = "https://ghe.example/api/v3/" }},
	{"http-bind", ":8080", func(c *Config) { c.HTTPBind = ":8080" }},
	{"period-jitter", "0.25", func(c *Config) { c.PeriodJitter = 0.25 }},
	{"failure-backoff-max", "5m", func(c *Config) { c.FailureBackoffMax = 5 * time.Minute }},
	{"verbose", "6", func(c *Config) { c.Verbosity = 6 }},
}

// The settings that only make sense together, tested in their own tests.
var settingsTestedElsewhere = []string{
	"username", "password", "password-file", "github-app-private-key-file", "github-app-private-key",
	"github-app-application-id", "github-app-client-id", "github-app-installation-id",
	"http-metrics", "http-pprof", "git",
	"verify-signatures", "allowed-signers-file", "gpg-keyring-file", // TestVerifySignatures
	"max-staleness", "sync-token-file", "webhook-secret-file", "webhook-bind", // TestTriggerSettings
	"serve-token-file", // TestServeSettings
}

// TestEverySetting sets each option by flag, by $GITSYNC_ name and by
// $GIT_SYNC_ name, and checks the effect and the deprecation warning.
func TestEverySetting(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range settingCases {
		covered[tc.name] = true
		key := strings.ToUpper(strings.ReplaceAll(tc.name, "-", "_"))
		forms := []struct {
			how  string
			args []string
			env  []string
			warn string
		}{
			{"flag", []string{"--" + tc.name + "=" + tc.value}, nil, ""},
			{"flag-space", []string{"--" + tc.name, tc.value}, nil, ""},
			{"new env", nil, []string{"GITSYNC_" + key + "=" + tc.value}, ""},
			{"old env", nil, []string{"GIT_SYNC_" + key + "=" + tc.value},
				"environment variable $GIT_SYNC_" + key + " is deprecated, use $GITSYNC_" + key + " instead"},
		}
		for _, f := range forms {
			if _, isBool := newParser(nil).byName[tc.name].value.(boolValue); isBool && f.how == "flag-space" {
				continue // "--one-time true" is a flag and a stray argument
			}
			t.Run(tc.name+"/"+f.how, func(t *testing.T) {
				base := baseArgs(t)
				git := strings.TrimPrefix(base[2], "--git=")
				// Drop the base flag the case itself sets, so the
				// environment forms are not overridden by it.
				var args []string
				for _, a := range base {
					if !strings.HasPrefix(a, "--"+tc.name+"=") {
						args = append(args, a)
					}
				}
				r, err := Parse(append(args, f.args...), f.env)
				if err != nil {
					t.Fatal(err)
				}
				want := defaultConfig(git)
				tc.mod(&want)
				compare(t, r.Config, want)
				var wantWarn []string
				if f.warn != "" {
					wantWarn = []string{f.warn}
				}
				if !slices.Equal(r.Warnings, wantWarn) {
					t.Errorf("warnings %q, want %q", r.Warnings, wantWarn)
				}
			})
		}
	}
	for _, o := range newParser(nil).opts {
		if !o.noEnv && o.replaces == "" && o.deprecated == "" && !o.hidden &&
			!covered[o.name] && !slices.Contains(settingsTestedElsewhere, o.name) {
			t.Errorf("option --%s has no case in settingCases", o.name)
		}
	}
}

func TestLegacyEnvNames(t *testing.T) {
	tests := []struct {
		env  string
		warn string
		mod  func(c *Config)
	}{
		{"GIT_SYNC_BRANCH=dev", "environment variable $GIT_SYNC_BRANCH is deprecated, use $GITSYNC_REF instead",
			func(c *Config) { c.Ref = "dev" }},
		{"GIT_SYNC_REV=v1.2", "environment variable $GIT_SYNC_REV is deprecated, use $GITSYNC_REF instead",
			func(c *Config) { c.Ref = "v1.2" }},
		{"GIT_SYNC_DEST=current", "environment variable $GIT_SYNC_DEST is deprecated, use $GITSYNC_LINK instead",
			func(c *Config) { c.Link = "current" }},
		{"GIT_SYNC_WAIT=2.5", "environment variable $GIT_SYNC_WAIT is deprecated, use $GITSYNC_PERIOD instead",
			func(c *Config) { c.Period, c.InitPeriod = 2500*time.Millisecond, 2500*time.Millisecond }},
		{"GIT_SYNC_TIMEOUT=30", "environment variable $GIT_SYNC_TIMEOUT is deprecated, use $GITSYNC_SYNC_TIMEOUT instead",
			func(c *Config) { c.SyncTimeout = 30 * time.Second }},
		{"GIT_SYNC_MAX_SYNC_FAILURES=3", "environment variable $GIT_SYNC_MAX_SYNC_FAILURES is deprecated, use $GITSYNC_MAX_FAILURES instead",
			func(c *Config) { c.MaxFailures, c.InitMaxFailures = 3, 3 }},
		{"GIT_SYNC_HOOK_COMMAND=/bin/hook", "environment variable $GIT_SYNC_HOOK_COMMAND is deprecated, use $GITSYNC_EXECHOOK_COMMAND instead",
			func(c *Config) { c.ExecHook.Command = "/bin/hook" }},
		{"GIT_SSH_KEY_FILE=/a:/b::/c", "environment variable $GIT_SSH_KEY_FILE is deprecated, use $GITSYNC_SSH_KEY_FILE instead",
			func(c *Config) { c.SSHKeyFiles = []string{"/a", "/b", "/c"} }},
		{"GIT_KNOWN_HOSTS=false", "environment variable $GIT_KNOWN_HOSTS is deprecated, use $GITSYNC_SSH_KNOWN_HOSTS instead",
			func(c *Config) { c.SSHKnownHosts = false }},
		{"GIT_SYNC_KNOWN_HOSTS=false", "environment variable $GIT_SYNC_KNOWN_HOSTS is deprecated, use $GITSYNC_SSH_KNOWN_HOSTS instead",
			func(c *Config) { c.SSHKnownHosts = false }},
		{"GIT_SSH_KNOWN_HOSTS_FILE=/kh", "environment variable $GIT_SSH_KNOWN_HOSTS_FILE is deprecated, use $GITSYNC_SSH_KNOWN_HOSTS_FILE instead",
			func(c *Config) { c.SSHKnownHostsFile = "/kh" }},
		{"GIT_COOKIE_FILE=true", "environment variable $GIT_COOKIE_FILE is deprecated, use $GITSYNC_COOKIE_FILE instead",
			func(c *Config) { c.CookieFile = true }},
		{"GIT_ASKPASS_URL=http://a/", "environment variable $GIT_ASKPASS_URL is deprecated, use $GITSYNC_ASKPASS_URL instead",
			func(c *Config) { c.AskpassURL = "http://a/" }},
		{"GIT_SYNC_SSH=true", "environment variable $GIT_SYNC_SSH is deprecated, it has no effect (ssh is used when --repo asks for it)",
			func(c *Config) {}},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			args := baseArgs(t)
			r, err := Parse(args, []string{tc.env})
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig(strings.TrimPrefix(args[2], "--git="))
			tc.mod(&want)
			compare(t, r.Config, want)
			if !slices.Equal(r.Warnings, []string{tc.warn}) {
				t.Errorf("warnings %q, want %q", r.Warnings, []string{tc.warn})
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		get  func(c Config) any
		want any
		warn []string
	}{
		{
			name: "old env beats new env",
			env:  []string{"GITSYNC_REF=new", "GIT_SYNC_REF=old"},
			get:  func(c Config) any { return c.Ref }, want: "old",
			warn: []string{
				"environment variable $GIT_SYNC_REF is deprecated, use $GITSYNC_REF instead",
				"environment variables $GITSYNC_REF, $GIT_SYNC_REF all set --ref; using $GIT_SYNC_REF (older names win)",
			},
		},
		{
			name: "legacy env beats old and new env",
			env:  []string{"GITSYNC_SSH_KEY_FILE=/new", "GIT_SSH_KEY_FILE=/legacy", "GIT_SYNC_SSH_KEY_FILE=/old"},
			get:  func(c Config) any { return c.SSHKeyFiles }, want: []string{"/legacy"},
			warn: []string{
				"environment variable $GIT_SYNC_SSH_KEY_FILE is deprecated, use $GITSYNC_SSH_KEY_FILE instead",
				"environment variable $GIT_SSH_KEY_FILE is deprecated, use $GITSYNC_SSH_KEY_FILE instead",
				"environment variables $GITSYNC_SSH_KEY_FILE, $GIT_SYNC_SSH_KEY_FILE, $GIT_SSH_KEY_FILE all set --ssh-key-file; " +
					"using $GIT_SSH_KEY_FILE (older names win)",
			},
		},
		{
			name: "old and new env with the same value: no conflict warning",
			env:  []string{"GITSYNC_REF=same", "GIT_SYNC_REF=same"},
			get:  func(c Config) any { return c.Ref }, want: "same",
			warn: []string{"environment variable $GIT_SYNC_REF is deprecated, use $GITSYNC_REF instead"},
		},
		{
			name: "flag beats env",
			args: []string{"--ref=flag"},
			env:  []string{"GITSYNC_REF=new"},
			get:  func(c Config) any { return c.Ref }, want: "flag",
		},
		{
			name: "flag beats old env",
			args: []string{"--period=20s"},
			env:  []string{"GIT_SYNC_PERIOD=30s"},
			get:  func(c Config) any { return c.Period }, want: 20 * time.Second,
			warn: []string{"environment variable $GIT_SYNC_PERIOD is deprecated, use $GITSYNC_PERIOD instead"},
		},
		{
			name: "empty env is unset",
			env:  []string{"GITSYNC_REF=new", "GIT_SYNC_REF="},
			get:  func(c Config) any { return c.Ref }, want: "new",
		},
		{
			name: "first duplicate wins, as with os.Getenv",
			env:  []string{"GITSYNC_REF=one", "GITSYNC_REF=two"},
			get:  func(c Config) any { return c.Ref }, want: "one",
		},
		{
			name: "scalar flag twice: last wins",
			args: []string{"--ref=a", "--ref", "b"},
			get:  func(c Config) any { return c.Ref }, want: "b",
		},
		{
			name: "deprecated env beats new env",
			env:  []string{"GITSYNC_PERIOD=5s", "GIT_SYNC_WAIT=3"},
			get:  func(c Config) any { return c.Period }, want: 3 * time.Second,
			warn: []string{"environment variable $GIT_SYNC_WAIT is deprecated, use $GITSYNC_PERIOD instead"},
		},
		{
			name: "new flag beats deprecated env",
			args: []string{"--period=5s"},
			env:  []string{"GIT_SYNC_WAIT=3"},
			get:  func(c Config) any { return c.Period }, want: 5 * time.Second,
			warn: []string{
				"environment variable $GIT_SYNC_WAIT is deprecated, use $GITSYNC_PERIOD instead",
				"$GIT_SYNC_WAIT is ignored because --period is set",
			},
		},
		{
			name: "deprecated flag beats new env",
			args: []string{"--wait=3"},
			env:  []string{"GITSYNC_PERIOD=5s"},
			get:  func(c Config) any { return c.Period }, want: 3 * time.Second,
			warn: []string{"flag --wait is deprecated, use --period instead"},
		},
		{
			name: "deprecated flag beats new flag",
			args: []string{"--wait=3", "--period=5s"},
			get:  func(c Config) any { return c.Period }, want: 3 * time.Second,
			warn: []string{"flag --wait is deprecated, use --period instead"},
		},
		{
			name: "ssh-key-file flags replace the default and accumulate",
			args: []string{"--ssh-key-file=/a", "--ssh-key-file", "/b"},
			env:  []string{"GITSYNC_SSH_KEY_FILE=/env"},
			get:  func(c Config) any { return c.SSHKeyFiles }, want: []string{"/a", "/b"},
		},
		{
			name: "ssh-key-file env is colon separated",
			env:  []string{"GITSYNC_SSH_KEY_FILE=/a:/b"},
			get:  func(c Config) any { return c.SSHKeyFiles }, want: []string{"/a", "/b"},
		},
		{
			name: "short -v with separate value",
			args: []string{"-v", "2"},
			get:  func(c Config) any { return c.Verbosity }, want: 2,
		},
		{
			name: "short -v=value",
			args: []string{"-v=6"},
			get:  func(c Config) any { return c.Verbosity }, want: 6,
		},
		{
			name: "short -v glued",
			args: []string{"-v5"},
			get:  func(c Config) any { return c.Verbosity }, want: 5,
		},
		{
			name: "bool flag without value",
			args: []string{"--one-time"},
			get:  func(c Config) any { return c.OneTime }, want: true,
		},
		{
			name: "bool flag =false beats env",
			args: []string{"--one-time=false"},
			env:  []string{"GITSYNC_ONE_TIME=true"},
			get:  func(c Config) any { return c.OneTime }, want: false,
		},
		{
			name: "init-max-failures follows max-failures when unset",
			args: []string{"--max-failures=7"},
			get:  func(c Config) any { return c.InitMaxFailures }, want: 7,
		},
		{
			name: "init-max-failures set to 0 stays 0",
			args: []string{"--max-failures=7", "--init-max-failures=0"},
			get:  func(c Config) any { return c.InitMaxFailures }, want: 0,
		},
		{
			name: "init-period 0 means period",
			args: []string{"--period=3s", "--init-period=0"},
			get:  func(c Config) any { return c.InitPeriod }, want: 3 * time.Second,
		},
		{
			name: "webhook-success-status -1 means 0",
			args: []string{"--webhook-success-status=-1"},
			get:  func(c Config) any { return c.Webhook.SuccessStatus }, want: 0,
		},
		{
			name: "webhook-success-status 0 stays 0",
			args: []string{"--webhook-success-status=0"},
			get:  func(c Config) any { return c.Webhook.SuccessStatus }, want: 0,
		},
		{
			name: "github-base-url with slash kept",
			args: []string{"--github-base-url=https://ghe/api/"},
			get:  func(c Config) any { return c.GitHubApp.BaseURL }, want: "https://ghe/api/",
		},
		{
			name: "verbosity above 9 is kept",
			args: []string{"-v", "12"},
			get:  func(c Config) any { return c.Verbosity }, want: 12,
		},
		{
			name: "git-config entries first, then adds in order",
			args: []string{"--git-config-add=x.y:1", "--git-config=a.b:c", "--git-config-add", "x.y:2"},
			get:  func(c Config) any { return c.GitConfig },
			want: []GitConfigEntry{{Key: "a.b", Value: "c"}, {Key: "x.y", Value: "1", Add: true}, {Key: "x.y", Value: "2", Add: true}},
		},
		{
			name: "git-config-add env may hold a list",
			env:  []string{"GITSYNC_GIT_CONFIG_ADD=x.y:1,x.y:2"},
			get:  func(c Config) any { return c.GitConfig },
			want: []GitConfigEntry{{Key: "x.y", Value: "1", Add: true}, {Key: "x.y", Value: "2", Add: true}},
		},
		{
			name: "credential list and repeat",
			args: []string{
				`--credential=[{"url":"https://a","username":"u1","password":"p1"},{"url":"https://b","username":"u2","password-file":"/f"}]`,
				`--credential={"url":"https://c","username":"u3","password":"p3"}`,
			},
			get: func(c Config) any { return c.Credentials },
			want: []Credential{
				{URL: "https://a", Username: "u1", Password: secret.New("p1")},
				{URL: "https://b", Username: "u2", PasswordFile: "/f"},
				{URL: "https://c", Username: "u3", Password: secret.New("p3")},
			},
		},
		{
			name: "credential env",
			env:  []string{`GITSYNC_CREDENTIAL={"url":"https://a","username":"u","password":"p"}`},
			get:  func(c Config) any { return c.Credentials },
			want: []Credential{{URL: "https://a", Username: "u", Password: secret.New("p")}},
		},
		{
			name: "credential flag beats env",
			args: []string{`--credential={"url":"https://f","username":"u","password":"p"}`},
			env:  []string{`GITSYNC_CREDENTIAL={"url":"https://e","username":"u","password":"p"}`},
			get:  func(c Config) any { return c.Credentials },
			want: []Credential{{URL: "https://f", Username: "u", Password: secret.New("p")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.args, tc.env...)
			if got := tc.get(r.Config); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if !slices.Equal(r.Warnings, tc.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warn)
			}
		})
	}
}

func TestDeprecatedFlags(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		mod  func(c *Config)
		warn []string
	}{
		{[]string{"--branch=dev"}, nil, func(c *Config) { c.Ref = "dev" },
			[]string{"flag --branch is deprecated, use --ref instead"}},
		{[]string{"--branch=dev", "--rev=HEAD"}, nil, func(c *Config) { c.Ref = "dev" },
			[]string{"flag --branch is deprecated, use --ref instead", "flag --rev is deprecated, use --ref instead"}},
		{[]string{"--rev=v1.0"}, nil, func(c *Config) { c.Ref = "v1.0" },
			[]string{"flag --rev is deprecated, use --ref instead"}},
		{[]string{"--ref=main", "--branch=dev"}, nil, func(c *Config) { c.Ref = "dev" },
			[]string{"flag --branch is deprecated, use --ref instead"}},
		{[]string{"--branch=dev"}, []string{"GITSYNC_REF=main"}, func(c *Config) { c.Ref = "dev" },
			[]string{"flag --branch is deprecated, use --ref instead"}},
		{[]string{"--ref=main"}, []string{"GIT_SYNC_BRANCH=dev"}, func(c *Config) { c.Ref = "main" },
			[]string{
				"environment variable $GIT_SYNC_BRANCH is deprecated, use $GITSYNC_REF instead",
				"$GIT_SYNC_BRANCH is ignored because --ref is set",
			}},
		{nil, []string{"GIT_SYNC_BRANCH=dev", "GIT_SYNC_REV=HEAD", "GITSYNC_REF=main"}, func(c *Config) { c.Ref = "dev" },
			[]string{
				"environment variable $GIT_SYNC_BRANCH is deprecated, use $GITSYNC_REF instead",
				"environment variable $GIT_SYNC_REV is deprecated, use $GITSYNC_REF instead",
			}},
		{nil, []string{"GIT_SYNC_REV=HEAD", "GITSYNC_REF=main"}, func(c *Config) { c.Ref = "main" },
			[]string{"environment variable $GIT_SYNC_REV is deprecated, use $GITSYNC_REF instead"}},
		{[]string{"--dest=current"}, nil, func(c *Config) { c.Link = "current" },
			[]string{"flag --dest is deprecated, use --link instead"}},
		{[]string{"--wait=0.5"}, nil, func(c *Config) { c.Period, c.InitPeriod = 500*time.Millisecond, 500*time.Millisecond },
			[]string{"flag --wait is deprecated, use --period instead"}},
		{[]string{"--timeout=30"}, nil, func(c *Config) { c.SyncTimeout = 30 * time.Second },
			[]string{"flag --timeout is deprecated, use --sync-timeout instead"}},
		{[]string{"--max-sync-failures=3"}, nil, func(c *Config) { c.MaxFailures, c.InitMaxFailures = 3, 3 },
			[]string{"flag --max-sync-failures is deprecated, use --max-failures instead"}},
		{[]string{"--sync-hook-command=/bin/hook"}, nil, func(c *Config) { c.ExecHook.Command = "/bin/hook" },
			[]string{"flag --sync-hook-command is deprecated, use --exechook-command instead"}},
		{[]string{"--v=4"}, nil, func(c *Config) { c.Verbosity = 4 },
			[]string{"flag --v is deprecated, use -v or --verbose instead"}},
		{[]string{"--ssh"}, nil, func(c *Config) {},
			[]string{"flag --ssh is deprecated, it has no effect (ssh is used when --repo asks for it)"}},
		{[]string{"--username=u", "--password=pw"}, nil, func(c *Config) { c.Username, c.Password = "u", secret.New("pw") },
			[]string{"flag --password is deprecated, it shows the password to every user of the machine; use $GITSYNC_PASSWORD or --password-file instead"}},
		{[]string{"--username=u"}, []string{"GIT_SYNC_PASSWORD=pw"}, func(c *Config) { c.Username, c.Password = "u", secret.New("pw") },
			[]string{"environment variable $GIT_SYNC_PASSWORD is deprecated, use $GITSYNC_PASSWORD instead"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(append(tc.args, tc.env...), " "), func(t *testing.T) {
			args := baseArgs(t)
			r, err := Parse(append(args, tc.args...), tc.env)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig(strings.TrimPrefix(args[2], "--git="))
			tc.mod(&want)
			compare(t, r.Config, want)
			if !slices.Equal(r.Warnings, tc.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warn)
			}
		})
	}
}

// TestEmptyLinkMeansDefault checks that an explicitly empty --link (or
// $GITSYNC_LINK, or the deprecated spellings) asks for the default, the
// last element of --repo, as upstream does: charts template "--link={{
// .Values.link }}" and leave the value empty.
func TestEmptyLinkMeansDefault(t *testing.T) {
	for _, tc := range []struct {
		args, env []string
	}{
		{[]string{"--link="}, nil},
		{[]string{"--link", ""}, nil},
		{nil, []string{"GITSYNC_LINK="}},
		{nil, []string{"GIT_SYNC_LINK="}},
		{[]string{"--link="}, []string{"GITSYNC_LINK=current"}},
		{[]string{"--dest="}, nil},
	} {
		t.Run(strings.Join(append(tc.args, tc.env...), " "), func(t *testing.T) {
			r, err := Parse(append(baseArgs(t), tc.args...), tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if r.Config.Link != "repo.git" {
				t.Errorf("Link = %q, want the default %q", r.Config.Link, "repo.git")
			}
		})
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		args []string
		want Action
	}{
		{[]string{"-h"}, ActionHelp},
		{[]string{"-?"}, ActionHelp},
		{[]string{"--help"}, ActionHelp},
		{[]string{"--repo=x", "-?", "--root=y"}, ActionHelp},
		{[]string{"--man"}, ActionMan},
		{[]string{"--version"}, ActionVersion},
		{[]string{"--version", "--help"}, ActionHelp},
		{[]string{"-h", "--bogus"}, ActionHelp},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// Invalid environment and missing --repo do not stop these.
			r, err := Parse(tc.args, []string{"GITSYNC_ONE_TIME=maybe"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Action != tc.want {
				t.Errorf("action %v, want %v", r.Action, tc.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--bogus"}, nil, "unknown flag: --bogus"},
		{[]string{"-x"}, nil, "unknown shorthand flag: 'x' in -x"},
		{[]string{"--one-time=maybe"}, nil, `invalid argument "maybe" for "--one-time" flag: not a boolean (use true or false)`},
		{[]string{"--period=10"}, nil, `invalid argument "10" for "--period" flag: not a duration (use a number with a unit, like 10s or 500ms)`},
		{[]string{"--depth=one"}, nil, `invalid argument "one" for "--depth" flag: not an integer`},
		{[]string{"--wait=soon"}, nil, `invalid argument "soon" for "--wait" flag: not a number of seconds`},
		{[]string{"--root"}, nil, "flag needs an argument: --root"},
		{[]string{"stray"}, nil, `unexpected argument "stray": git-sync takes only flags`},
		{nil, []string{"GITSYNC_ONE_TIME=maybe"}, `invalid value "maybe" for environment variable $GITSYNC_ONE_TIME: not a boolean (use true or false)`},
		{nil, []string{"GIT_SYNC_ONE_TIME=yes"}, `invalid value "yes" for environment variable $GIT_SYNC_ONE_TIME: not a boolean (use true or false)`},
		// The flag wins, but a malformed variable is still reported.
		{[]string{"--one-time"}, []string{"GITSYNC_ONE_TIME=maybe"}, `invalid value "maybe" for environment variable $GITSYNC_ONE_TIME: not a boolean (use true or false)`},
		{[]string{"--period=1s"}, []string{"GITSYNC_PERIOD=10"}, `invalid value "10" for environment variable $GITSYNC_PERIOD: not a duration (use a number with a unit, like 10s or 500ms)`},
		{nil, []string{"GITSYNC_PERIOD=10"}, `invalid value "10" for environment variable $GITSYNC_PERIOD: not a duration (use a number with a unit, like 10s or 500ms)`},
		{nil, []string{"GIT_SYNC_TIMEOUT=1.5"}, `invalid value "1.5" for environment variable $GIT_SYNC_TIMEOUT: not a whole number of seconds`},
		{nil, []string{"GITSYNC_GITHUB_APP_INSTALLATION_ID=x"}, `invalid value "x" for environment variable $GITSYNC_GITHUB_APP_INSTALLATION_ID: not an integer`},
		{[]string{"--git-config=a.b"}, nil, "--git-config: missing ':' after the key at position 4"},
		{nil, []string{"GITSYNC_GIT_CONFIG=a.b:\\q"}, `--git-config (from $GITSYNC_GIT_CONFIG): invalid escape "\q" at position 5 (want \n, \t, \", \, or \\)`},
		{[]string{"--git-config-add=a.b:1,c.d:2"}, nil, `--git-config-add (use 1): want exactly one key:value, got 2 (escape commas in values as \,)`},
		{[]string{"--credential={"}, nil, "--credential (use 1): not a JSON object or list of objects: unexpected end of input"},
		{[]string{"--credential={\"url\":\"https://h\",\"username\":\"u\"}"}, nil,
			`--credential (use 1): one of "password" and "password-file" is required`},
		{[]string{`--credential={"url":"https://h","password":"p"}`}, nil, `--credential (use 1): "username" is required`},
		{[]string{`--credential={"username":"u","password":"p"}`}, nil, `--credential (use 1): "url" is required`},
		{[]string{`--credential={"url":"u","username":"u","password":"p","password-file":"f"}`}, nil,
			`--credential (use 1): "password" and "password-file" cannot both be set`},
		{[]string{`--credential={"url":"u","username":"u","password":"p","pasword":"f"}`}, nil,
			`--credential (use 1): not a JSON object or list of objects: unknown field "pasword"`},
		{[]string{`--credential={"url":1}`}, nil,
			`--credential (use 1): not a JSON object or list of objects: field "url" must be a string`},
		{[]string{`--credential=nonsense`}, nil,
			`--credential (use 1): not a JSON object or list of objects: syntax error at byte 2`},
		{[]string{`--credential=[]`}, nil, `--credential (use 1): empty list`},
		{[]string{`--credential={"url":"u","username":"u","password":"p"}{}`}, nil,
			`--credential (use 1): unexpected data after the JSON value`},
		{[]string{`--credential=[{"url":"u","username":"u","password":"p"},{"url":"u"}]`}, nil,
			`--credential (use 1): entry 2: "username" is required`},
		{[]string{"--credential={}", `--credential={"url":"u","username":"u","password":"p"}`, "--credential=[1]"}, nil,
			"--credential (use 1): \"url\" is required\n--credential (use 3): not a JSON object or list of objects: got a JSON number"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			err := parseErr(t, tc.args, tc.env...)
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Errorf("error %q is a %T, want *UsageError", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n  %s\nwant\n  %s", err, tc.want)
			}
		})
	}
}

func TestValidationMessages(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--period=5ms"}, nil, "--period must be at least 10ms, got 5ms"},
		{nil, []string{"GITSYNC_PERIOD=5ms"}, "--period (from $GITSYNC_PERIOD) must be at least 10ms, got 5ms"},
		{[]string{"--wait=0.001"}, nil, "--period (from --wait) must be at least 10ms, got 1ms"},
		{[]string{"--init-period=9ms"}, nil, "--init-period must be at least 10ms, got 9ms"},
		{[]string{"--init-period=-1s"}, nil, "--init-period must be at least 10ms, got -1s"},
		{[]string{"--sync-timeout=1ms"}, nil, "--sync-timeout must be at least 10ms, got 1ms"},
		{[]string{"--timeout=0"}, nil, "--sync-timeout (from --timeout) must be at least 10ms, got 0s"},
		{[]string{"--depth=-1"}, nil, "--depth must not be negative, got -1"},
		{[]string{"--stale-worktree-timeout=-1s"}, nil, "--stale-worktree-timeout must not be negative, got -1s"},
		{[]string{"--exechook-timeout=500ms"}, nil, "--exechook-timeout must be at least 1s, got 500ms"},
		{[]string{"--exechook-backoff=0s"}, nil, "--exechook-backoff must be at least 1s, got 0s"},
		{[]string{"--pre-publish-exechook-timeout=10ms"}, nil, "--pre-publish-exechook-timeout must be at least 1s, got 10ms"},
		{[]string{"--pre-publish-exechook-backoff=999ms"}, nil, "--pre-publish-exechook-backoff must be at least 1s, got 999ms"},
		{[]string{"--publish-gate-timeout=10ms"}, nil, "--publish-gate-timeout must be at least 1s, got 10ms"},
		{[]string{"--keep-worktrees=-1"}, nil, "--keep-worktrees must not be negative, got -1"},
		{[]string{"--serve-bind=:8080", "--serve-max-requests=-1"}, nil, "--serve-max-requests must not be negative, got -1"},
		{[]string{"--serve-token-file=/t"}, nil, "--serve-token-file needs --serve-bind"},
		{[]string{"--verify-signatures=yes", "--allowed-signers-file=/s"}, nil, `--verify-signatures must be one of commit, tag; got "yes"`},
		{[]string{"--verify-signatures=commit"}, nil, "--verify-signatures needs --allowed-signers-file or --gpg-keyring-file"},
		{[]string{"--allowed-signers-file=/s"}, nil, "--allowed-signers-file needs --verify-signatures"},
		{nil, []string{"GITSYNC_GPG_KEYRING_FILE=/k"}, "--gpg-keyring-file (from $GITSYNC_GPG_KEYRING_FILE) needs --verify-signatures"},
		{[]string{"--verify-signatures=tag", "--gpg-keyring-file=/k", "--ref=" + strings.Repeat("a", 40)}, nil, "--verify-signatures=tag needs --ref to name an annotated tag, not a commit hash"},
		{[]string{"--webhook-timeout=100ms"}, nil, "--webhook-timeout must be at least 1s, got 100ms"},
		{[]string{"--webhook-backoff=100ms"}, nil, "--webhook-backoff must be at least 1s, got 100ms"},
		{[]string{"--webhook-success-status=42"}, nil, "--webhook-success-status must be an HTTP status (100-599), or 0 or -1 for fire and forget; got 42"},
		{[]string{"--webhook-url=ftp://x/"}, nil, "--webhook-url must be an absolute http or https URL"},
		{[]string{"--webhook-url=http://x/", "--webhook-method="}, nil, "--webhook-method must not be empty"},
		{[]string{"--askpass-url=/relative"}, nil, "--askpass-url must be an absolute http or https URL"},
		{[]string{"--github-base-url=api.github.com"}, nil, "--github-base-url must be an absolute http or https URL"},
		{[]string{"--submodules=all"}, nil, `--submodules must be one of recursive, shallow, off; got "all"`},
		{[]string{"--git-gc=never"}, nil, `--git-gc must be one of auto, always, aggressive, off; got "never"`},
		{[]string{"--http-metrics"}, nil, "--http-metrics needs --http-bind"},
		{[]string{"--http-pprof"}, nil, "--http-pprof needs --http-bind"},
		{[]string{"-v", "-1"}, nil, "--verbose must not be negative, got -1"},
		{[]string{"--repo=-oProxyCommand=x"}, nil, `--repo must not begin with "-"`},
		{[]string{"--repo="}, nil, "--repo is required"},
		{[]string{"--root="}, nil, "--root is required"},
		{[]string{"--ref=--upload-pack=x"}, nil, `--ref must not begin with "-", got "--upload-pack=x"`},
		{[]string{"--ref="}, nil, "--ref must not be empty"},
		{[]string{"--git=/nonexistent/git"}, nil, `--git "/nonexistent/git" not found: stat /nonexistent/git: no such file or directory`},
		{[]string{"--git=no-such-git-program"}, nil, `--git "no-such-git-program" not found: executable file not found in $PATH`},
		{[]string{"--sync-on-signal=SIGFOO"}, nil, `--sync-on-signal: unknown signal "SIGFOO" (use a name like SIGHUP or HUP, or a number like 1)`},
		{[]string{"--sync-on-signal=0"}, nil, "--sync-on-signal: signal number 0 is out of range (1-64)"},
		{[]string{"--sync-on-signal=KILL"}, nil, "--sync-on-signal: SIGKILL (signal 9) cannot trigger syncs: it cannot be caught"},
		{[]string{"--sync-on-signal=19"}, nil, "--sync-on-signal: SIGSTOP (signal 19) cannot trigger syncs: it cannot be caught"},
		{[]string{"--sync-on-signal=SIGTERM"}, nil, "--sync-on-signal: SIGTERM (signal 15) cannot trigger syncs: it stops git-sync"},
		{[]string{"--sync-on-signal=15"}, nil, "--sync-on-signal: SIGTERM (signal 15) cannot trigger syncs: it stops git-sync"},
		{[]string{"--sync-on-signal=int"}, nil, "--sync-on-signal: SIGINT (signal 2) cannot trigger syncs: it stops git-sync"},
		{[]string{"--sync-on-signal=2"}, nil, "--sync-on-signal: SIGINT (signal 2) cannot trigger syncs: it stops git-sync"},
		{[]string{"--sync-on-signal=SIGCHLD"}, nil, "--sync-on-signal: SIGCHLD (signal 17) cannot trigger syncs: git-sync receives one whenever a child process (every git command) exits"},
		{[]string{"--sync-on-signal=17"}, nil, "--sync-on-signal: SIGCHLD (signal 17) cannot trigger syncs: git-sync receives one whenever a child process (every git command) exits"},
		{[]string{"--sync-on-signal=URG"}, nil, "--sync-on-signal: SIGURG (signal 23) cannot trigger syncs: the Go runtime sends it to itself to preempt goroutines"},
		{[]string{"--sync-on-signal=23"}, nil, "--sync-on-signal: SIGURG (signal 23) cannot trigger syncs: the Go runtime sends it to itself to preempt goroutines"},
		{nil, []string{"GITSYNC_SYNC_ON_SIGNAL=SIGCHLD"}, "--sync-on-signal (from $GITSYNC_SYNC_ON_SIGNAL): SIGCHLD (signal 17) cannot trigger syncs: git-sync receives one whenever a child process (every git command) exits"},
		{[]string{"--branch=a", "--rev=b"}, nil, "--branch and --rev cannot both be set unless the revision is HEAD; use --ref"},
		{nil, []string{"GIT_SYNC_BRANCH=a", "GIT_SYNC_REV=b"}, "$GIT_SYNC_BRANCH and $GIT_SYNC_REV cannot both be set unless the revision is HEAD; use --ref"},
		{[]string{"--change-permissions=0775"}, nil, "--change-permissions is no longer supported, use --group-write (or $GITSYNC_GROUP_WRITE) instead"},
		{nil, []string{"GIT_SYNC_PERMISSIONS=0775"}, "$GIT_SYNC_PERMISSIONS is no longer supported, use --group-write (or $GITSYNC_GROUP_WRITE) instead"},

		// Paths inside --root.
		{[]string{"--link=.git"}, nil, `--link must not be inside ".git", which git-sync reserves in --root`},
		{[]string{"--link=.worktrees/abc"}, nil, `--link must not be inside ".worktrees", which git-sync reserves in --root`},
		{[]string{"--link=./.git-sync"}, nil, `--link must not be inside ".git-sync", which git-sync reserves in --root`},
		{[]string{"--link=x/../.git-sync.lock"}, nil, `--link must not be inside ".git-sync.lock", which git-sync reserves in --root`},
		{[]string{"--link=/tmp/root/.worktrees"}, nil, `--link must not be inside ".worktrees", which git-sync reserves in --root`},
		{[]string{"--link=/tmp/root"}, nil, "--link must not be --root itself"},
		{[]string{"--link=."}, nil, `--link must name a path for the symlink, not "."`},
		{[]string{"--link=a/.."}, nil, `--link must name a path for the symlink, not "a/.."`},
		{[]string{"--link=.."}, nil, `--link must name a path for the symlink, not ".."`},
		{[]string{"--repo=https://host/.git"}, nil, `--link (from --repo) must not be inside ".git", which git-sync reserves in --root`},
		{[]string{"--touch-file=.git/touched"}, nil, `--touch-file must not be inside ".git", which git-sync reserves in --root`},
		{[]string{"--touch-file=."}, nil, "--touch-file must not be --root itself"},
		{[]string{"--error-file=.git-sync.lock"}, nil, `--error-file must not be inside ".git-sync.lock", which git-sync reserves in --root`},
		{[]string{"--touch-file=repo.git"}, nil, "--link (from --repo) and --touch-file must not name the same path"},
		{[]string{"--touch-file=/tmp/root/x", "--error-file=x"}, nil, "--touch-file and --error-file must not name the same path"},

		// Authentication.
		{[]string{"--username=u"}, nil, "--username needs $GITSYNC_PASSWORD or --password-file"},
		{[]string{"--username=u", "--password-file=/p"}, []string{"GITSYNC_PASSWORD=pw"},
			"--username needs exactly one of $GITSYNC_PASSWORD and --password-file, not both"},
		{nil, []string{"GITSYNC_PASSWORD=pw"}, "$GITSYNC_PASSWORD requires --username"},
		{[]string{"--password=pw"}, nil, "$GITSYNC_PASSWORD (from --password) requires --username"},
		{[]string{"--password-file=/p"}, nil, "--password-file requires --username"},
		{[]string{"--repo=https://a:b@host/r", "--username=u", "--password-file=/p"}, nil,
			"--username cannot be combined with credentials in --repo"},
		{[]string{"--github-app-private-key-file=" + keyFile, "--github-app-installation-id=2"}, nil,
			"GitHub App authentication needs exactly one of --github-app-application-id and --github-app-client-id"},
		{[]string{"--github-app-private-key-file=" + keyFile, "--github-app-installation-id=2",
			"--github-app-application-id=1", "--github-app-client-id=c"}, nil,
			"GitHub App authentication needs exactly one of --github-app-application-id and --github-app-client-id"},
		{[]string{"--github-app-private-key-file=" + keyFile, "--github-app-application-id=1"}, nil,
			"GitHub App authentication needs --github-app-installation-id"},
		{[]string{"--github-app-application-id=1", "--github-app-installation-id=2"}, nil,
			"--github-app-application-id, --github-app-client-id and --github-app-installation-id need a private key " +
				"(--github-app-private-key-file or $GITSYNC_GITHUB_APP_PRIVATE_KEY)"},
		{[]string{"--github-app-private-key-file=" + keyFile, "--github-app-application-id=1", "--github-app-installation-id=2"},
			[]string{"GITSYNC_GITHUB_APP_PRIVATE_KEY=pem"},
			"--github-app-private-key-file and $GITSYNC_GITHUB_APP_PRIVATE_KEY cannot both be set"},
		{[]string{"--github-app-private-key-file=" + keyFile, "--github-app-application-id=1", "--github-app-installation-id=2",
			"--username=u", "--password-file=/p"}, nil,
			"GitHub App authentication cannot be combined with --username, $GITSYNC_PASSWORD or --password-file"},
		{[]string{"--github-app-application-id=-1"}, nil, "--github-app-application-id must not be negative\n" +
			"--github-app-application-id, --github-app-client-id and --github-app-installation-id need a private key " +
			"(--github-app-private-key-file or $GITSYNC_GITHUB_APP_PRIVATE_KEY)"},

		// Several problems are all reported.
		{[]string{"--period=1ms", "--depth=-2"}, nil, "--period must be at least 10ms, got 1ms\n--depth must not be negative, got -2"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			err := parseErr(t, tc.args, tc.env...)
			var ue *UsageError
			if errors.As(err, &ue) {
				t.Errorf("error %q is a *UsageError, want a validation error", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n  %s\nwant\n  %s", err, tc.want)
			}
		})
	}
}

func TestRepoCredentials(t *testing.T) {
	tests := []struct {
		repo     string
		wantRepo string
		user     string
		pass     string
	}{
		{"https://user:p%40ss%3Aw@host/org/r.git", "https://host/org/r.git", "user", "p@ss:w"},
		{"HTTP://u:p@host:8080/r", "HTTP://host:8080/r", "u", "p"},
		{"https://user@host/r", "https://user@host/r", "", ""},
		{"ssh://git:notapassword@host/r", "ssh://git:notapassword@host/r", "", ""},
		{"git@host:org/r.git", "git@host:org/r.git", "", ""},
		{"https://host/path@with-at", "https://host/path@with-at", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			r := mustParse(t, []string{"--repo=" + tc.repo})
			c := r.Config
			if c.Repo != tc.wantRepo || c.Username != tc.user || c.Password.Reveal() != tc.pass {
				t.Errorf("got repo %q user %q pass %q, want %q %q %q", c.Repo, c.Username, c.Password.Reveal(), tc.wantRepo, tc.user, tc.pass)
			}
		})
	}
}

func TestRepoLeaf(t *testing.T) {
	tests := map[string]string{
		"https://host/org/dags.git":  "dags.git",
		"https://host/org/dags.git/": "dags.git",
		"https://host/org/dags//":    "dags",
		"git@host:org/repo.git":      "repo.git",
		"git@host:repo.git":          "repo.git",
		"file:///x/y":                "y",
		"/srv/repos/z":               "z",
		"relative":                   "relative",
		"ssh://git@host:2222/a/b":    "b",
	}
	for repo, want := range tests {
		if got := repoLeaf(repo); got != want {
			t.Errorf("repoLeaf(%q) = %q, want %q", repo, got, want)
		}
	}
}

func TestSyncOnSignal(t *testing.T) {
	tests := map[string]syscall.Signal{
		"SIGHUP": syscall.SIGHUP, "HUP": syscall.SIGHUP, "hup": syscall.SIGHUP, "sigHup": syscall.SIGHUP,
		"1": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "usr2": syscall.SIGUSR2, "34": syscall.Signal(34),
	}
	for in, want := range tests {
		r := mustParse(t, []string{"--sync-on-signal=" + in})
		if r.Config.SyncOnSignal != want {
			t.Errorf("--sync-on-signal=%s: got %d, want %d", in, r.Config.SyncOnSignal, want)
		}
	}
	for _, bad := range []string{"FOO", "SIG", "-1", "65", "STOP", "9", "1.5"} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q): no error", bad)
		}
	}
}

func TestGitIsResolved(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	args := []string{"--repo=https://h/r", "--root=/r"}

	r, err := Parse(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "git"); r.Config.Git != want {
		t.Errorf("default --git resolved to %q, want %q", r.Config.Git, want)
	}

	t.Chdir(dir)
	r, err = Parse(append(args, "--git=./git"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "git"); r.Config.Git != want {
		t.Errorf("--git=./git resolved to %q, want %q", r.Config.Git, want)
	}
}

func TestGitHubApp(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	r := mustParse(t, []string{"--github-app-private-key-file=" + keyFile, "--github-app-application-id=12",
		"--github-app-installation-id=34"})
	g := r.Config.GitHubApp
	if !g.Enabled() || g.ApplicationID != 12 || g.InstallationID != 34 || g.PrivateKeyFile != keyFile {
		t.Errorf("got %+v", g)
	}

	r = mustParse(t, []string{"--github-app-client-id=Iv1.abc", "--github-app-installation-id=34"},
		"GITSYNC_GITHUB_APP_PRIVATE_KEY=-----BEGIN KEY-----")
	g = r.Config.GitHubApp
	if !g.Enabled() || g.ClientID != "Iv1.abc" || g.PrivateKey.Reveal() != "-----BEGIN KEY-----" {
		t.Errorf("got %+v", g)
	}

	// The key is environment-only: there is no such flag.
	err := parseErr(t, []string{"--github-app-private-key=x"})
	if err.Error() != "unknown flag: --github-app-private-key" {
		t.Errorf("got %v", err)
	}
}

// TestSecretsStayOut checks that no error or warning repeats a secret.
func TestSecretsStayOut(t *testing.T) {
	const pw = "hunter2-secret"
	cases := []struct {
		args []string
		env  []string
	}{
		{nil, []string{"GITSYNC_PASSWORD=" + pw}},
		{[]string{"--password=" + pw}, nil},
		{[]string{"--repo=https://u:" + pw + "@h/r", "--username=x", "--password-file=/p"}, nil},
		{[]string{"--repo=-https://u:" + pw + "@h/r"}, nil},
		{[]string{"--repo=https://u:" + pw + "@h/.git"}, nil},
		{[]string{`--credential={"url":"https://h","username":"u","password":"` + pw + `","password-file":"/f"}`}, nil},
		{[]string{`--credential={"url":"https://h","username":"u","password":"` + pw + `"`}, nil},
		{[]string{`--credential={"url":"https://h","username":"u","password":"` + pw + `"} x`}, nil},
		{[]string{`--credential=[{"url":"https://h","username":"u","password":"` + pw + `"}, 7]`}, nil},
		{nil, []string{`GITSYNC_CREDENTIAL={"password":"` + pw + `","bogus":1}`}},
		{[]string{"--git-config=http.extraHeader:Authorization: " + pw + `\x`}, nil},
		{[]string{"--webhook-url=ftp://u:" + pw + "@h/"}, nil},
		{[]string{"--github-app-private-key-file=/k", "--github-app-application-id=1"}, []string{"GITSYNC_GITHUB_APP_PRIVATE_KEY=" + pw}},
	}
	for _, tc := range cases {
		err := parseErr(t, tc.args, tc.env...)
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error reveals the secret: %v", err)
		}
	}

	r := mustParse(t, []string{"--username=u", "--wait=1"}, "GIT_SYNC_PASSWORD="+pw, "GITSYNC_PASSWORD="+pw+"-new")
	if len(r.Warnings) != 3 {
		t.Errorf("want 3 warnings, got %q", r.Warnings)
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, pw) {
			t.Errorf("warning reveals the secret: %s", w)
		}
	}
}

// TestVerifySignatures sets the signature options together (each alone is
// invalid) by flag and by environment.
func TestVerifySignatures(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{[]string{"--verify-signatures=tag", "--allowed-signers-file=/s"}, []string{"GITSYNC_GPG_KEYRING_FILE=/k"}},
		{nil, []string{"GITSYNC_VERIFY_SIGNATURES=tag", "GITSYNC_ALLOWED_SIGNERS_FILE=/s", "GITSYNC_GPG_KEYRING_FILE=/k"}},
	} {
		r := mustParse(t, tc.args, tc.env...)
		want := defaultConfig(r.Config.Git)
		want.VerifySignatures, want.AllowedSignersFile, want.GPGKeyringFile = VerifyTag, "/s", "/k"
		compare(t, r.Config, want)
	}
}

// TestServeSettings: --serve-token-file goes with --serve-bind, from flags
// and from both environment spellings.
func TestServeSettings(t *testing.T) {
	res := mustParse(t, []string{"--serve-bind=:8080", "--serve-token-file=/secret/token"})
	if res.Config.ServeBind != ":8080" || res.Config.ServeTokenFile != "/secret/token" {
		t.Errorf("flags: ServeBind %q, ServeTokenFile %q", res.Config.ServeBind, res.Config.ServeTokenFile)
	}
	res = mustParse(t, nil, "GITSYNC_SERVE_BIND=:9000", "GIT_SYNC_SERVE_TOKEN_FILE=/t", "GITSYNC_SERVE_MAX_REQUESTS=4")
	if res.Config.ServeBind != ":9000" || res.Config.ServeTokenFile != "/t" || res.Config.ServeMaxRequests != 4 {
		t.Errorf("env: %q %q %d", res.Config.ServeBind, res.Config.ServeTokenFile, res.Config.ServeMaxRequests)
	}
}
