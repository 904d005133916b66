package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// configcheckBin is test/configcheck of the main module, built once: the
// project's own config package, which this module cannot import (Go's
// internal rule), run as a program.
var configcheckBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitsync-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	configcheckBin = filepath.Join(dir, "configcheck")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", configcheckBin, "./test/configcheck")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: FAIL: build ../test/configcheck: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// parsed is what test/configcheck reports.
type parsed struct {
	Error        string   `json:"error"`
	Warnings     []string `json:"warnings"`
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

// parse runs git-sync's config parser on args and env ("NAME=value"). It
// fails the test if the configuration is invalid, or if env names a
// git-sync-looking variable that git-sync does not read (git-sync, as v4,
// ignores it silently).
func parse(t *testing.T, what string, args, env []string) parsed {
	t.Helper()
	in, _ := json.Marshal(map[string][]string{"args": args, "env": env})
	cmd := exec.Command(configcheckBin)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: configcheck: %v", what, err)
	}
	var p parsed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("%s: configcheck output: %v\n%s", what, err, out)
	}
	if p.Error != "" {
		t.Errorf("%s: git-sync rejects the configuration: %s", what, p.Error)
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GIT") && !slices.Contains(p.KnownEnv, name) && !ignoredChartEnv[name] {
			t.Errorf("%s: git-sync does not read $%s", what, name)
		}
	}
	return p
}

// ignoredChartEnv are variables the official Airflow chart sets that
// git-sync v4 does not read either (v4 reads only GIT_SYNC_SSH for the
// deprecated --ssh); they are harmless.
var ignoredChartEnv = map[string]bool{"GITSYNC_SSH": true}

// decodeStrict decodes YAML into v, rejecting fields v does not have.
func decodeStrict(t *testing.T, file string, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// manifests are the documents in deploy/kubernetes, decoded strictly into
// the real API types, keyed by "file#index".
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
}

// loadManifests decodes every document in deploy/kubernetes: Deployments,
// and the Services that expose a relay; any other kind fails the test.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	out := manifests{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			key := fmt.Sprintf("%s#%d", f, i)
			switch {
			case head.APIVersion == "apps/v1" && head.Kind == "Deployment":
				d := new(appsv1.Deployment)
				decodeStrict(t, f, doc, d)
				out.deployments[key] = d
			case head.APIVersion == "v1" && head.Kind == "Service":
				s := new(corev1.Service)
				decodeStrict(t, f, doc, s)
				out.services[key] = s
			default:
				t.Fatalf("%s document %d: %s %s, want only apps/v1 Deployments and v1 Services here", f, i, head.APIVersion, head.Kind)
			}
		}
	}
	return out
}

// deployments returns every Deployment in deploy/kubernetes.
func deployments(t *testing.T) map[string]*appsv1.Deployment {
	t.Helper()
	return loadManifests(t).deployments
}

// flagValue returns the value of --name=VALUE in args, and whether it is
// there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// isRelay says whether the pod's git-sync sidecar serves its repository
// (--serve-bind): a relay needs no init container, nothing in its pod
// reads the files.
func isRelay(spec corev1.PodSpec) bool {
	for _, c := range spec.Containers {
		if _, ok := flagValue(c.Args, "serve-bind"); ok && isGitSync(c) {
			return true
		}
	}
	return false
}

// isGitSync says whether c runs this image.
func isGitSync(c corev1.Container) bool { return strings.Contains(c.Image, "/git-sync:") }

// envOf returns c's environment, with values taken from Secrets replaced by
// a placeholder.
func envOf(c corev1.Container) []string {
	var env []string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "from-a-secret"
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// checkContainerSecurity checks what every git-sync container must have.
func checkContainerSecurity(t *testing.T, what string, sc *corev1.SecurityContext) {
	t.Helper()
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", what)
		return
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation must be false", what)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem must be true", what)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities must drop ALL and add none", what)
	}
}

func TestKubernetesManifests(t *testing.T) {
	for name, d := range deployments(t) {
		t.Run(name, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("pod securityContext: runAsNonRoot must be true")
			}
			if psc == nil || psc.FSGroup == nil {
				t.Errorf("pod securityContext: fsGroup must be set for the shared volume")
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext: seccompProfile must be RuntimeDefault")
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range spec.Volumes {
				volumes[v.Name] = v
			}
			var inits, sidecars int
			for _, c := range spec.InitContainers {
				if isGitSync(c) {
					inits++
					p := checkGitSync(t, "init container "+c.Name, c, volumes)
					if !p.OneTime {
						t.Errorf("init container %s: must run --one-time", c.Name)
					}
				}
			}
			for _, c := range spec.Containers {
				if !isGitSync(c) {
					continue
				}
				sidecars++
				p := checkGitSync(t, "container "+c.Name, c, volumes)
				if p.OneTime {
					t.Errorf("container %s: the sidecar must not be --one-time", c.Name)
				}
				checkProbesAndMetrics(t, c, p, d.Spec.Template.Annotations)
			}
			wantInits := 1
			if isRelay(spec) {
				wantInits = 0
			}
			if inits != wantInits || sidecars != 1 {
				t.Errorf("want %d git-sync init container and one sidecar, got %d and %d", wantInits, inits, sidecars)
			}
		})
	}
}

// checkGitSync checks one git-sync container: security, resources, /tmp,
// credentials from Secret volumes, and that git-sync accepts its flags and
// environment.
func checkGitSync(t *testing.T, what string, c corev1.Container, volumes map[string]corev1.Volume) parsed {
	t.Helper()
	checkContainerSecurity(t, what, c.SecurityContext)
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("%s: needs memory request and limit and a CPU request", what)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/tmp"]; !ok || volumes[m.Name].EmptyDir == nil {
		t.Errorf("%s: /tmp must be an emptyDir (the root filesystem is read-only)", what)
	}
	p := parse(t, what, c.Args, envOf(c))
	if m, ok := mounts[p.Root]; !ok || volumes[m.Name].EmptyDir == nil {
		t.Errorf("%s: --root %s must be the shared emptyDir", what, p.Root)
	}
	// Credentials are files from Secrets, mounted as directories: a
	// subPath mount never sees a rotated Secret.
	var files []string
	if p.PasswordFile != "" {
		files = append(files, p.PasswordFile)
	} else {
		files = append(files, p.SSHKeyFiles...)
		files = append(files, p.KnownHosts)
	}
	if p.HasPassword {
		t.Errorf("%s: use --password-file, not a password in the environment", what)
	}
	for _, f := range files {
		m, ok := mounts[filepath.Dir(f)]
		switch {
		case !ok:
			t.Errorf("%s: %s is not in a mounted directory", what, f)
		case volumes[m.Name].Secret == nil:
			t.Errorf("%s: %s does not come from a Secret", what, f)
		case m.SubPath != "" || !m.ReadOnly:
			t.Errorf("%s: %s must be mounted read-only without subPath", what, f)
		}
	}
	return p
}

func checkProbesAndMetrics(t *testing.T, c corev1.Container, p parsed, annotations map[string]string) {
	t.Helper()
	if !p.HTTPMetrics || p.HTTPBind == "" {
		t.Fatalf("container %s: needs --http-bind and --http-metrics", c.Name)
	}
	_, port, _ := strings.Cut(p.HTTPBind, ":")
	named := map[string]string{}
	for _, cp := range c.Ports {
		named[cp.Name] = fmt.Sprint(cp.ContainerPort)
	}
	probe := func(kind string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("container %s: no HTTP %s probe", c.Name, kind)
			return
		}
		got := pr.HTTPGet.Port.String()
		if n, ok := named[got]; ok {
			got = n
		}
		if pr.HTTPGet.Path != path || got != port {
			t.Errorf("container %s: %s probe on %s port %s, want %s port %s", c.Name, kind, pr.HTTPGet.Path, got, path, port)
		}
	}
	probe("readiness", c.ReadinessProbe, "/")
	probe("liveness", c.LivenessProbe, "/livez")
	if annotations["prometheus.io/scrape"] != "true" || annotations["prometheus.io/port"] != port || annotations["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v do not point Prometheus at port %s /metrics", annotations, port)
	}
}

// officialGitSync is the part of the official chart's dags.gitSync values
// that these files use, with the chart's key names (apache/airflow chart/
// values.yaml and the git_sync_container template in _helpers.yaml, chart
// 1.13+). Strict decoding makes a misspelt key an error, where Helm would
// ignore it.
type officialGitSync struct {
	Enabled           bool   `json:"enabled"`
	Repo              string `json:"repo"`
	Branch            string `json:"branch"`
	Rev               string `json:"rev"`
	Ref               string `json:"ref"`
	Depth             int    `json:"depth"`
	MaxFailures       int    `json:"maxFailures"`
	SubPath           string `json:"subPath"`
	CredentialsSecret string `json:"credentialsSecret"`
	SSHKeySecret      string `json:"sshKeySecret"`
	KnownHosts        string `json:"knownHosts"`
	Period            string `json:"period"`
	Wait              *int   `json:"wait"`
	ContainerName     string `json:"containerName"`
	UID               int64  `json:"uid"`
	SecurityContexts  struct {
		Container *corev1.SecurityContext `json:"container"`
	} `json:"securityContexts"`
	Env               []corev1.EnvVar             `json:"env"`
	Resources         corev1.ResourceRequirements `json:"resources"`
	ExtraVolumeMounts []corev1.VolumeMount        `json:"extraVolumeMounts"`
}

type imageValues struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	PullPolicy string `json:"pullPolicy"`
}

type officialValues struct {
	Images struct {
		GitSync imageValues `json:"gitSync"`
	} `json:"images"`
	Dags struct {
		GitSync officialGitSync `json:"gitSync"`
	} `json:"dags"`
}

// officialEnv is the environment the official chart's git_sync_container
// template gives git-sync for values g (init: the init container).
func officialEnv(g officialGitSync, init bool) []string {
	var env []string
	add := func(value string, names ...string) {
		for _, n := range names {
			env = append(env, n+"="+value)
		}
	}
	if g.SSHKeySecret != "" {
		add("/etc/git-secret/ssh", "GIT_SSH_KEY_FILE", "GITSYNC_SSH_KEY_FILE")
		add("true", "GIT_SYNC_SSH", "GITSYNC_SSH")
		if g.KnownHosts != "" {
			add("true", "GIT_KNOWN_HOSTS", "GITSYNC_SSH_KNOWN_HOSTS")
			add("/etc/git-secret/known_hosts", "GIT_SSH_KNOWN_HOSTS_FILE", "GITSYNC_SSH_KNOWN_HOSTS_FILE")
		} else {
			add("false", "GIT_KNOWN_HOSTS", "GITSYNC_SSH_KNOWN_HOSTS")
		}
	} else if g.CredentialsSecret != "" {
		add("from-a-secret", "GIT_SYNC_USERNAME", "GITSYNC_USERNAME", "GIT_SYNC_PASSWORD", "GITSYNC_PASSWORD")
	}
	add(g.Rev, "GIT_SYNC_REV")
	add(g.Ref, "GITSYNC_REF")
	add(g.Branch, "GIT_SYNC_BRANCH")
	add(g.Repo, "GIT_SYNC_REPO", "GITSYNC_REPO")
	add(fmt.Sprint(g.Depth), "GIT_SYNC_DEPTH", "GITSYNC_DEPTH")
	add("/git", "GIT_SYNC_ROOT", "GITSYNC_ROOT")
	add("repo", "GIT_SYNC_DEST")
	add("repo", "GITSYNC_LINK")
	add("true", "GIT_SYNC_ADD_USER", "GITSYNC_ADD_USER")
	if g.Wait != nil {
		add(fmt.Sprint(*g.Wait), "GIT_SYNC_WAIT")
	}
	add(g.Period, "GITSYNC_PERIOD")
	add(fmt.Sprint(g.MaxFailures), "GIT_SYNC_MAX_SYNC_FAILURES", "GITSYNC_MAX_FAILURES")
	if init {
		add("true", "GIT_SYNC_ONE_TIME", "GITSYNC_ONE_TIME")
	}
	for _, e := range g.Env {
		add(e.Value, e.Name)
	}
	return env
}

func loadOfficial(t *testing.T) officialValues {
	t.Helper()
	const file = "airflow/official-chart-values.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v officialValues
	decodeStrict(t, file, b, &v)
	return v
}

func TestOfficialAirflowChartValues(t *testing.T) {
	v := loadOfficial(t)
	g := v.Dags.GitSync
	if !g.Enabled || !strings.HasSuffix(v.Images.GitSync.Repository, "/git-sync") || v.Images.GitSync.Tag == "" {
		t.Errorf("the values must enable git-sync and point images.gitSync at this image: %+v", v.Images.GitSync)
	}
	checkContainerSecurity(t, "dags.gitSync.securityContexts.container", g.SecurityContexts.Container)
	if sc := g.SecurityContexts.Container; sc != nil && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Errorf("dags.gitSync.securityContexts.container: needs runAsNonRoot and seccomp RuntimeDefault")
	}
	if g.Resources.Limits.Memory().IsZero() {
		t.Errorf("dags.gitSync.resources: needs a memory limit")
	}
	for _, init := range []bool{true, false} {
		what := fmt.Sprintf("official chart, init=%v", init)
		p := parse(t, what, nil, officialEnv(g, init))
		if p.Ref != g.Ref {
			t.Errorf("%s: git-sync syncs %q, the values ask for ref %q (apache/airflow#42918: set branch to ref)", what, p.Ref, g.Ref)
		}
		if p.OneTime != init || p.Root != "/git" || p.Link != "repo" || p.Period != "30s" || p.MaxFailures != -1 {
			t.Errorf("%s: parsed %+v", what, p)
		}
		if !p.AddUser {
			t.Errorf("%s: the chart sets --add-user", what)
		}
		if !p.HTTPMetrics || p.HTTPBind != ":8081" {
			t.Errorf("%s: metrics not enabled by dags.gitSync.env", what)
		}
	}
}

// TestOfficialChartBranchOverridesRef pins the behaviour that makes the
// values above set branch and ref alike: with the chart's rendering, a
// branch beats ref, in git-sync v4 and here.
func TestOfficialChartBranchOverridesRef(t *testing.T) {
	g := loadOfficial(t).Dags.GitSync
	g.Branch, g.Ref = "main", "v1.2.3"
	if p := parse(t, "branch main, ref v1.2.3", nil, officialEnv(g, false)); p.Ref != "main" {
		t.Errorf("synced %q; git-sync v4 syncs the branch here", p.Ref)
	}
	g.Branch = "v1.2.3"
	if p := parse(t, "branch and ref v1.2.3", nil, officialEnv(g, false)); p.Ref != "v1.2.3" {
		t.Errorf("synced %q, want the tag", p.Ref)
	}
}

// communityGitSync is the community chart's dags.gitSync (airflow-helm/
// charts 8.x values.yaml; its git-sync container template).
type communityGitSync struct {
	Enabled bool `json:"enabled"`
	Image   struct {
		imageValues `json:",inline"`
		UID         int64 `json:"uid"`
		GID         int64 `json:"gid"`
	} `json:"image"`
	Resources             corev1.ResourceRequirements `json:"resources"`
	Repo                  string                      `json:"repo"`
	RepoSubPath           string                      `json:"repoSubPath"`
	Branch                string                      `json:"branch"`
	Revision              string                      `json:"revision"`
	Depth                 int                         `json:"depth"`
	SyncWait              int                         `json:"syncWait"`
	SyncTimeout           int                         `json:"syncTimeout"`
	MaxFailures           int                         `json:"maxFailures"`
	HTTPSecret            string                      `json:"httpSecret"`
	HTTPSecretUsernameKey string                      `json:"httpSecretUsernameKey"`
	HTTPSecretPasswordKey string                      `json:"httpSecretPasswordKey"`
	SSHSecret             string                      `json:"sshSecret"`
	SSHSecretKey          string                      `json:"sshSecretKey"`
	SSHKnownHosts         string                      `json:"sshKnownHosts"`
}

// communityEnv is the environment the community chart's git-sync container
// template sets: v3 names only.
func communityEnv(g communityGitSync, init bool) []string {
	var env []string
	if init {
		env = append(env, "GIT_SYNC_ONE_TIME=true")
	}
	env = append(env, "GIT_SYNC_ROOT=/dags", "GIT_SYNC_DEST=repo", "GIT_SYNC_REPO="+g.Repo,
		"GIT_SYNC_BRANCH="+g.Branch, "GIT_SYNC_REV="+g.Revision, fmt.Sprintf("GIT_SYNC_DEPTH=%d", g.Depth),
		fmt.Sprintf("GIT_SYNC_WAIT=%d", g.SyncWait), fmt.Sprintf("GIT_SYNC_TIMEOUT=%d", g.SyncTimeout),
		"GIT_SYNC_ADD_USER=true", fmt.Sprintf("GIT_SYNC_MAX_SYNC_FAILURES=%d", g.MaxFailures))
	if g.SSHSecret != "" {
		env = append(env, "GIT_SYNC_SSH=true", "GIT_SSH_KEY_FILE=/etc/git-secret/id_rsa")
	}
	if g.SSHKnownHosts != "" {
		env = append(env, "GIT_KNOWN_HOSTS=true", "GIT_SSH_KNOWN_HOSTS_FILE=/etc/git-secret/known_hosts")
	} else {
		env = append(env, "GIT_KNOWN_HOSTS=false")
	}
	if g.HTTPSecret != "" {
		env = append(env, "GIT_SYNC_USERNAME=from-a-secret", "GIT_SYNC_PASSWORD=from-a-secret")
	}
	return env
}

func TestCommunityAirflowChartValues(t *testing.T) {
	const file = "airflow/community-chart-values.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Dags struct {
			GitSync communityGitSync `json:"gitSync"`
		} `json:"dags"`
	}
	decodeStrict(t, file, b, &v)
	g := v.Dags.GitSync
	if !g.Enabled || !strings.HasSuffix(g.Image.Repository, "/git-sync") || g.Image.UID != 65533 {
		t.Errorf("the values must enable git-sync with this image as UID 65533: %+v", g.Image)
	}
	for _, init := range []bool{true, false} {
		what := fmt.Sprintf("community chart, init=%v", init)
		env := communityEnv(g, init)
		for _, kv := range env {
			if strings.HasPrefix(kv, "GITSYNC_") {
				t.Errorf("%s: %s is not a v3 name", what, kv)
			}
		}
		p := parse(t, what, nil, env)
		if p.Ref != g.Branch || p.OneTime != init || p.Root != "/dags" || p.Link != "repo" ||
			p.Period != "1m0s" || p.MaxFailures != -1 || p.KnownHosts != "/etc/git-secret/known_hosts" ||
			!slices.Equal(p.SSHKeyFiles, []string{"/etc/git-secret/id_rsa"}) {
			t.Errorf("%s: parsed %+v", what, p)
		}
		if len(p.Warnings) == 0 {
			t.Errorf("%s: v3 names should be reported as deprecated", what)
		}
	}
}

// TestRelayManifest checks kubernetes/relay.yaml as a whole: one relay
// serving with a token from a Secret, a Service that reaches its git port,
// and followers whose --repo is that Service, authenticating with the same
// Secret and polling at a short period.
func TestRelayManifest(t *testing.T) {
	const file = "kubernetes/relay.yaml"
	m := loadManifests(t)
	var relay *appsv1.Deployment
	var followers []*appsv1.Deployment
	for key, d := range m.deployments {
		if !strings.HasPrefix(key, file+"#") {
			continue
		}
		if isRelay(d.Spec.Template.Spec) {
			if relay != nil {
				t.Fatalf("%s: more than one relay", file)
			}
			relay = d
		} else {
			followers = append(followers, d)
		}
	}
	if relay == nil || len(followers) == 0 {
		t.Fatalf("%s: want a relay Deployment (git-sync with --serve-bind) and a follower Deployment", file)
	}
	if relay.Spec.Replicas == nil || *relay.Spec.Replicas != 1 {
		t.Errorf("relay %s: want 1 replica", relay.Name)
	}
	spec := relay.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var c corev1.Container
	for _, k := range spec.Containers {
		if isGitSync(k) {
			c = k
		}
	}
	bind, _ := flagValue(c.Args, "serve-bind")
	_, servePort, _ := strings.Cut(bind, ":")
	ports := map[string]string{} // container port name -> number
	for _, p := range c.Ports {
		ports[p.Name] = fmt.Sprint(p.ContainerPort)
	}
	if !slices.Contains(slices.Collect(maps.Values(ports)), servePort) {
		t.Errorf("relay: --serve-bind=%s, but no container port %s", bind, servePort)
	}
	// The token the relay asks for comes from a Secret, mounted as a
	// directory (re-read on rotation).
	tokenFile, ok := flagValue(c.Args, "serve-token-file")
	var tokenSecret string
	if !ok {
		t.Errorf("relay: no --serve-token-file")
	} else {
		found := false
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == filepath.Dir(tokenFile) {
				found = true
				v := volumes[vm.Name]
				if v.Secret == nil || vm.SubPath != "" || !vm.ReadOnly {
					t.Errorf("relay: %s must come from a Secret mounted read-only without subPath", tokenFile)
				} else {
					tokenSecret = v.Secret.SecretName
				}
			}
		}
		if !found {
			t.Errorf("relay: %s is not in a mounted directory", tokenFile)
		}
	}

	// A Service selects the relay's pods and reaches its git port.
	var svc *corev1.Service
	var svcPort int32
	for key, s := range m.services {
		if !strings.HasPrefix(key, file+"#") {
			continue
		}
		selects := len(s.Spec.Selector) > 0
		for k, v := range s.Spec.Selector {
			selects = selects && relay.Spec.Template.Labels[k] == v
		}
		if !selects {
			continue
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort.String()
			if n, ok := ports[target]; ok {
				target = n
			}
			if target == servePort {
				svc, svcPort = s, p.Port
			}
		}
	}
	if svc == nil {
		t.Fatalf("%s: no Service selects the relay's pods and targets its --serve-bind port %s", file, servePort)
	}

	// Followers: --repo is the Service, the password file the relay's
	// token Secret, and the period short.
	wantHost := fmt.Sprintf("%s:%d", svc.Name, svcPort)
	for _, d := range followers {
		fspec := d.Spec.Template.Spec
		fvolumes := map[string]corev1.Volume{}
		for _, v := range fspec.Volumes {
			fvolumes[v.Name] = v
		}
		for _, k := range append(append([]corev1.Container(nil), fspec.InitContainers...), fspec.Containers...) {
			if !isGitSync(k) {
				continue
			}
			what := d.Name + "/" + k.Name
			p := parse(t, what, k.Args, envOf(k))
			u, err := url.Parse(p.Repo)
			if err != nil || u.Scheme != "http" || u.Host != wantHost {
				t.Errorf("%s: --repo=%s, want http://%s/...", what, p.Repo, wantHost)
			}
			mounted := ""
			for _, vm := range k.VolumeMounts {
				if vm.MountPath == filepath.Dir(p.PasswordFile) && fvolumes[vm.Name].Secret != nil {
					mounted = fvolumes[vm.Name].Secret.SecretName
				}
			}
			if p.PasswordFile == "" || mounted != tokenSecret {
				t.Errorf("%s: --password-file %q must come from the relay's token Secret %q (got %q)", what, p.PasswordFile, tokenSecret, mounted)
			}
			if p.OneTime {
				continue
			}
			if period, err := time.ParseDuration(p.Period); err != nil || period > 10*time.Second {
				t.Errorf("%s: --period=%s; followers learn of new commits by polling the relay, keep it short (at most 10s)", what, p.Period)
			}
		}
	}
}

// relayHost is the relay's Service in kubernetes/relay.yaml, as the Airflow
// values reach it.
const relayHost = "git-sync-relay:8080"

// TestOfficialChartRelayValues checks the official chart's git-sync sidecars
// pointed at the relay: the values decode into the chart's shapes, and
// git-sync, given the environment the chart renders from them, syncs the
// relay's URL at a short period with the relay token as password.
func TestOfficialChartRelayValues(t *testing.T) {
	const file = "airflow/official-chart-relay-values.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v officialValues
	decodeStrict(t, file, b, &v)
	g := v.Dags.GitSync
	checkContainerSecurity(t, file, g.SecurityContexts.Container)
	if g.CredentialsSecret == "" {
		t.Errorf("%s: the relay asks for its token: set dags.gitSync.credentialsSecret", file)
	}
	for _, init := range []bool{true, false} {
		what := fmt.Sprintf("%s, init=%v", file, init)
		p := parse(t, what, nil, officialEnv(g, init))
		if u, err := url.Parse(p.Repo); err != nil || u.Scheme != "http" || u.Host != relayHost {
			t.Errorf("%s: git-sync syncs %q, want http://%s/...", what, p.Repo, relayHost)
		}
		if p.Ref != g.Ref || p.OneTime != init {
			t.Errorf("%s: parsed %+v", what, p)
		}
		if !p.HasPassword {
			t.Errorf("%s: no password: the chart's credentialsSecret should give git-sync the relay token", what)
		}
		if period, err := time.ParseDuration(p.Period); err != nil || period > 10*time.Second {
			t.Errorf("%s: --period %q; sidecars learn of new commits by polling the relay, keep it short (at most 10s)", what, p.Period)
		}
	}
}

// TestGitDagBundleRelayValues checks Airflow 3's GitDagBundle pointed at
// the relay: [dag_processor] dag_bundle_config_list is valid JSON naming the
// bundle class with the keyword arguments it takes, its repo_url is the
// relay, and its git_conn_id is a connection the values define from a
// Secret.
func TestGitDagBundleRelayValues(t *testing.T) {
	const file = "airflow/airflow3-gitdagbundle-relay-values.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Dags struct {
			GitSync struct {
				Enabled bool `json:"enabled"`
			} `json:"gitSync"`
		} `json:"dags"`
		// The chart's secret: environment variables from Secrets.
		Secret []struct {
			EnvName    string `json:"envName"`
			SecretName string `json:"secretName"`
			SecretKey  string `json:"secretKey"`
		} `json:"secret"`
		// The chart's config: airflow.cfg sections.
		Config map[string]map[string]string `json:"config"`
	}
	decodeStrict(t, file, b, &v)
	raw, ok := v.Config["dag_processor"]["dag_bundle_config_list"]
	if !ok {
		t.Fatalf("%s: no config.dag_processor.dag_bundle_config_list", file)
	}
	// The GitDagBundle keyword arguments (apache-airflow-providers-git).
	type kwargs struct {
		TrackingRef       string `json:"tracking_ref"`
		Subdir            string `json:"subdir,omitempty"`
		GitConnID         string `json:"git_conn_id,omitempty"`
		RepoURL           string `json:"repo_url,omitempty"`
		RefreshInterval   int    `json:"refresh_interval,omitempty"`
		PruneDotgitFolder *bool  `json:"prune_dotgit_folder,omitempty"`
		Submodules        *bool  `json:"submodules,omitempty"`
	}
	var bundles []struct {
		Name      string `json:"name"`
		Classpath string `json:"classpath"`
		Kwargs    kwargs `json:"kwargs"`
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bundles); err != nil {
		t.Fatalf("%s: dag_bundle_config_list: %v", file, err)
	}
	if len(bundles) == 0 {
		t.Fatalf("%s: no bundle", file)
	}
	conns := map[string]bool{}
	for _, s := range v.Secret {
		if id, ok := strings.CutPrefix(s.EnvName, "AIRFLOW_CONN_"); ok && s.SecretName != "" && s.SecretKey != "" {
			conns[strings.ToLower(id)] = true
		}
	}
	for _, bd := range bundles {
		k := bd.Kwargs
		if bd.Classpath != "airflow.providers.git.bundles.git.GitDagBundle" || bd.Name == "" || k.TrackingRef == "" {
			t.Errorf("%s: bundle %+v: want a named GitDagBundle with a tracking_ref", file, bd)
		}
		if u, err := url.Parse(k.RepoURL); err != nil || u.Scheme != "http" || u.Host != relayHost || u.User != nil {
			t.Errorf("%s: bundle %s: repo_url %q, want http://%s/... without credentials", file, bd.Name, k.RepoURL, relayHost)
		}
		if !conns[k.GitConnID] {
			t.Errorf("%s: bundle %s: git_conn_id %q is not a connection set from a Secret (secret: envName AIRFLOW_CONN_...)", file, bd.Name, k.GitConnID)
		}
	}
	if v.Dags.GitSync.Enabled {
		t.Errorf("%s: the bundle fetches by itself; dags.gitSync should be off", file)
	}
}
