package app

import (
	"reflect"
	"testing"

	"gitsync/internal/auth"
	"gitsync/internal/config"
	"gitsync/internal/secret"
)

// TestAuthConfig parses real flags and environment and checks that every
// credential setting reaches auth.Config.
func TestAuthConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want auth.Config
	}{
		{
			name: "defaults",
			args: []string{"--repo=https://h/r", "--root=/tmp/r"},
			want: auth.Config{
				Repo:              "https://h/r",
				GitHubApp:         auth.GitHubApp{BaseURL: "https://api.github.com/"},
				SSHKeyFiles:       []string{"/etc/git-secret/ssh"},
				SSHKnownHosts:     true,
				SSHKnownHostsFile: "/etc/git-secret/known_hosts",
			},
		},
		{
			name: "password sources, credentials, cookies, ssh",
			args: []string{
				"--repo=https://u:pw@h/r", "--root=/tmp/r", "--askpass-url=http://ask/x",
				`--credential={"url":"https://h/b","username":"ub","password":"pb"}`,
				`--credential={"url":"https://h/a","username":"ua","password-file":"/pa"}`,
				"--cookie-file", "--ssh-key-file=/k1", "--ssh-key-file=/k2",
				"--ssh-known-hosts=false", "--ssh-known-hosts-file=/kh",
			},
			want: auth.Config{
				Repo:       "https://h/r",
				Username:   "u",
				Password:   secret.New("pw"),
				AskpassURL: "http://ask/x",
				GitHubApp:  auth.GitHubApp{BaseURL: "https://api.github.com/"},
				Credentials: []auth.Credential{
					{URL: "https://h/b", Username: "ub", Password: secret.New("pb")},
					{URL: "https://h/a", Username: "ua", PasswordFile: "/pa"},
				},
				CookieFile:        auth.DefaultCookieFile,
				SSHKeyFiles:       []string{"/k1", "/k2"},
				SSHKnownHosts:     false,
				SSHKnownHostsFile: "/kh",
			},
		},
		{
			name: "password file",
			args: []string{"--repo=https://h/r", "--root=/tmp/r", "--username=u", "--password-file=/pw"},
			want: auth.Config{
				Repo: "https://h/r", Username: "u", PasswordFile: "/pw",
				GitHubApp:   auth.GitHubApp{BaseURL: "https://api.github.com/"},
				SSHKeyFiles: []string{"/etc/git-secret/ssh"}, SSHKnownHosts: true, SSHKnownHostsFile: "/etc/git-secret/known_hosts",
			},
		},
		{
			name: "GitHub App",
			args: []string{
				"--repo=https://h/r", "--root=/tmp/r", "--github-app-client-id=cid",
				"--github-app-installation-id=7", "--github-base-url=https://ghe/api/v3",
			},
			env: []string{"GITSYNC_GITHUB_APP_PRIVATE_KEY=pem"},
			want: auth.Config{
				Repo: "https://h/r",
				GitHubApp: auth.GitHubApp{
					PrivateKey: secret.New("pem"), ClientID: "cid", InstallationID: 7, BaseURL: "https://ghe/api/v3/",
				},
				SSHKeyFiles: []string{"/etc/git-secret/ssh"}, SSHKnownHosts: true, SSHKnownHostsFile: "/etc/git-secret/known_hosts",
			},
		},
		{
			name: "GitHub App key file and application id",
			args: []string{
				"--repo=https://h/r", "--root=/tmp/r", "--github-app-private-key-file=/app.pem",
				"--github-app-application-id=5", "--github-app-installation-id=7",
			},
			want: auth.Config{
				Repo: "https://h/r",
				GitHubApp: auth.GitHubApp{
					PrivateKeyFile: "/app.pem", ApplicationID: 5, InstallationID: 7, BaseURL: "https://api.github.com/",
				},
				SSHKeyFiles: []string{"/etc/git-secret/ssh"}, SSHKnownHosts: true, SSHKnownHostsFile: "/etc/git-secret/known_hosts",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := config.Parse(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := authConfig(res.Config); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("authConfig =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}
