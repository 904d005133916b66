package app

import (
	"gitsync/internal/auth"
	"gitsync/internal/config"
)

// authConfig picks what the auth package needs out of the whole
// configuration: the repository, the credential sources and the ssh
// settings, and --cookie-file turned into the file it names.
func authConfig(c config.Config) auth.Config {
	a := auth.Config{
		Repo:         c.Repo,
		Username:     c.Username,
		Password:     c.Password,
		PasswordFile: c.PasswordFile,
		AskpassURL:   c.AskpassURL,
		GitHubApp: auth.GitHubApp{
			PrivateKey:     c.GitHubApp.PrivateKey,
			PrivateKeyFile: c.GitHubApp.PrivateKeyFile,
			ApplicationID:  c.GitHubApp.ApplicationID,
			ClientID:       c.GitHubApp.ClientID,
			InstallationID: c.GitHubApp.InstallationID,
			BaseURL:        c.GitHubApp.BaseURL,
		},
		SSHKeyFiles:       c.SSHKeyFiles,
		SSHKnownHosts:     c.SSHKnownHosts,
		SSHKnownHostsFile: c.SSHKnownHostsFile,
	}
	for _, cr := range c.Credentials {
		a.Credentials = append(a.Credentials, auth.Credential{
			URL: cr.URL, Username: cr.Username, Password: cr.Password, PasswordFile: cr.PasswordFile,
		})
	}
	if c.CookieFile {
		a.CookieFile = auth.DefaultCookieFile
	}
	return a
}
