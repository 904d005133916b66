// Command configcheck parses a git-sync configuration with the project's
// own config package and reports the outcome as JSON, without running
// anything. It exists for the deploy module's tests (deploy/), which decode
// the Kubernetes manifests and Airflow values into the real Kubernetes API
// types: that module cannot import gitsync/internal/config (Go's internal
// rule stops at the module boundary), so its tests build and run this
// program instead.
//
// Input on stdin: {"args": ["--flag=value", ...], "env": ["NAME=value", ...]}.
// Output on stdout: the parse error (if any), the warnings, the settings the
// deploy checks look at, and "knownEnv": every environment variable name the
// manual documents (the manual and the parser are driven by one option
// table), so that a misspelt name, which git-sync ignores as v4 does, can
// still be caught.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"

	"gitsync/internal/config"
)

type input struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

type output struct {
	Error        string   `json:"error,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	Action       string   `json:"action"`
	Repo         string   `json:"repo"`
	Ref          string   `json:"ref"`
	Root         string   `json:"root"`
	Link         string   `json:"link"`
	Period       string   `json:"period"`
	OneTime      bool     `json:"oneTime"`
	MaxFailures  int      `json:"maxFailures"`
	Username     string   `json:"username"`
	PasswordFile string   `json:"passwordFile"`
	HasPassword  bool     `json:"hasPassword"`
	SSHKeyFiles  []string `json:"sshKeyFiles"`
	KnownHosts   string   `json:"sshKnownHostsFile"`
	HTTPBind     string   `json:"httpBind"`
	HTTPMetrics  bool     `json:"httpMetrics"`
	GroupWrite   bool     `json:"groupWrite"`
	AddUser      bool     `json:"addUser"`
	KnownEnv     []string `json:"knownEnv"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "configcheck: read input:", err)
		os.Exit(2)
	}
	var out output
	res, err := config.Parse(in.Args, in.Env)
	if err != nil {
		out.Error = err.Error()
	}
	if res != nil {
		c := res.Config
		out.Action, out.Warnings = res.Action.String(), res.Warnings
		out.Repo, out.Ref, out.Root, out.Link = c.Repo, c.Ref, c.Root, c.Link
		out.Period, out.OneTime, out.MaxFailures = c.Period.String(), c.OneTime, c.MaxFailures
		out.Username, out.PasswordFile, out.HasPassword = c.Username, c.PasswordFile, !c.Password.IsZero()
		out.SSHKeyFiles, out.KnownHosts = c.SSHKeyFiles, c.SSHKnownHostsFile
		out.HTTPBind, out.HTTPMetrics = c.HTTPBind, c.HTTPMetrics
		out.GroupWrite, out.AddUser = c.GroupWrite, c.AddUser
	}
	var man bytes.Buffer
	config.WriteMan(&man)
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$(GIT[A-Z0-9_]*)`).FindAllStringSubmatch(man.String(), -1) {
		seen[m[1]] = true
	}
	for name := range seen {
		out.KnownEnv = append(out.KnownEnv, name)
	}
	sort.Strings(out.KnownEnv)
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "configcheck:", err)
		os.Exit(2)
	}
}
