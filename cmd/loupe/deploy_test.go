package main

// The files under deploy/ cannot run here (no container engine, no
// cluster), so they are checked for what can be checked: every loupe
// command line in them parses with that command's own flags, every LOUPE_*
// variable is one a command reads, ports and probes match the listeners
// the command lines open, the image's COPY sources exist, and systemd
// accepts the unit. The binary the process tests run is built as the
// image builds it (CGO_ENABLED=0, procs_test.go).

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const deployDir = "../../deploy"

// commandFlags is the flag set of `loupe cmd`, as its run function makes
// it; nil for a command that takes none of these files' flags.
func commandFlags(t *testing.T, cmd string) (*flag.FlagSet, *Config) {
	t.Helper()
	fs := flag.NewFlagSet("loupe "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg Config
	var err error
	if r, ok := roleCommands[cmd]; ok {
		err = cfg.flags(fs, r)
	} else if cmd == "demo" {
		_, err = demoFlags(fs, &cfg)
	} else {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return fs, &cfg
}

// checkCommand parses a loupe command line and returns its Config.
func checkCommand(t *testing.T, where string, args []string) (string, *Config) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: an empty loupe command", where)
		return "", nil
	}
	fs, cfg := commandFlags(t, args[0])
	if fs == nil {
		t.Errorf("%s: loupe has no command %q", where, args[0])
		return "", nil
	}
	if err := fs.Parse(args[1:]); err != nil {
		t.Errorf("%s: loupe %s: %v", where, strings.Join(args, " "), err)
	} else if fs.NArg() > 0 {
		t.Errorf("%s: loupe %s: unexpected argument %q", where, args[0], fs.Arg(0))
	}
	return args[0], cfg
}

// checkEnv fails for a LOUPE_* variable none of cmds reads.
func checkEnv(t *testing.T, where, name string, cmds ...string) {
	t.Helper()
	if !strings.HasPrefix(name, "LOUPE_") || name == "LOUPE_SECRET" {
		return
	}
	for _, cmd := range cmds {
		fs, _ := commandFlags(t, cmd)
		found := false
		fs.VisitAll(func(f *flag.Flag) { found = found || envName(f.Name) == name })
		if found {
			return
		}
	}
	t.Errorf("%s: %s is read by none of loupe %s", where, name, strings.Join(cmds, ", "))
}

// port is the port of a listen address.
func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// interpolated replaces compose's ${VAR...} with a value.
var interpolation = regexp.MustCompile(`\$\{[^}]*\}`)

func TestDeployDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var entry, cmd []string
	var env []string
	var stage string
	lines := strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n")
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch rest := strings.TrimSpace(strings.TrimPrefix(line, f[0])); f[0] {
		case "FROM":
			stage = line
			if strings.Count(strings.Fields(rest)[0], "/") > 1 || strings.Contains(strings.Split(strings.Fields(rest)[0], "/")[0], ".") {
				t.Errorf("%s: an image named with a registry host; name Docker Hub's official images only", line)
			}
		case "COPY":
			if strings.HasPrefix(rest, "--from=") {
				continue
			}
			srcs := strings.Fields(rest)
			for _, src := range srcs[:len(srcs)-1] {
				if m, _ := filepath.Glob(filepath.Join("../..", src)); len(m) == 0 {
					t.Errorf("%s: COPY %s: no such file in the repository", stage, src)
				}
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entry); err != nil {
				t.Errorf("ENTRYPOINT %s: %v", rest, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Errorf("CMD %s: %v", rest, err)
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, _, _ := strings.Cut(kv, "=")
				env = append(env, k)
			}
		}
	}
	if !slices.Equal(entry, []string{"loupe"}) {
		t.Errorf("ENTRYPOINT %q, want [\"loupe\"]", entry)
	}
	name, _ := checkCommand(t, "Dockerfile CMD", cmd)
	for _, k := range env {
		checkEnv(t, "Dockerfile ENV", k, "serve", "proxy", "collector", "replayer", "demo")
	}
	if name != "demo" {
		t.Errorf("the image's default command is %q, want the demo", name)
	}
	// What the image's runtime stage writes to must be the data folder.
	if !bytes.Contains(b, []byte("LOUPE_DATA=/var/lib/loupe")) || !bytes.Contains(b, []byte("VOLUME /var/lib/loupe")) {
		t.Error("the image does not keep its data folder in the volume /var/lib/loupe")
	}
}

func TestDeployCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	for name, s := range file.Services {
		if s.Image != "loupe:latest" {
			continue
		}
		args := make([]string, len(s.Command))
		for i, a := range s.Command {
			args[i] = interpolation.ReplaceAllString(a, "x")
		}
		cmd, cfg := checkCommand(t, "compose service "+name, args)
		if cfg == nil {
			continue
		}
		roles[cmd]++
		for k := range s.Environment {
			checkEnv(t, "compose service "+name, k, cmd)
		}
		want := map[string]int{"proxy": port(cfg.Listen), "collector": port(cfg.Listen), "replayer": port(cfg.Admin)}[cmd]
		for _, p := range s.Ports {
			if _, inside, _ := strings.Cut(p, ":"); inside != strconv.Itoa(want) {
				t.Errorf("compose service %s publishes %s; loupe %s listens on %d", name, p, cmd, want)
			}
		}
		if cfg.Collector != "" && !strings.Contains(cfg.Collector, "collector:") {
			t.Errorf("compose service %s forwards ingest to %s, not the collector service", name, cfg.Collector)
		}
	}
	if roles["proxy"] < 2 || roles["collector"] != 1 || roles["replayer"] != 1 {
		t.Errorf("compose runs %v; want two proxies, a collector and a replay server", roles)
	}
	example, err := os.ReadFile(filepath.Join(deployDir, "compose", "loupe.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range interpolation.FindAllString(string(b), -1) {
		name := strings.FieldsFunc(strings.Trim(v, "${}"), func(r rune) bool { return r == ':' || r == '-' || r == '?' })[0]
		if !bytes.Contains(example, []byte("\n"+name+"=")) {
			t.Errorf("compose.yaml uses %s, which loupe.env.example does not set", name)
		}
	}
}

func TestDeployKubernetes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "loupe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type doc struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec struct {
					Containers []struct {
						Args    []string `yaml:"args"`
						EnvFrom []struct {
							SecretRef struct {
								Name string `yaml:"name"`
							} `yaml:"secretRef"`
						} `yaml:"envFrom"`
						Ports []struct {
							Name          string `yaml:"name"`
							ContainerPort int    `yaml:"containerPort"`
						} `yaml:"ports"`
						ReadinessProbe probe `yaml:"readinessProbe"`
						LivenessProbe  probe `yaml:"livenessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var cmds []string
	deployments := 0
	for {
		var d doc
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		deployments++
		where := "Deployment " + d.Metadata.Name
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("%s: its selector %s=%s does not select its pods", where, k, v)
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			cmd, cfg := checkCommand(t, where, c.Args)
			if cfg == nil {
				continue
			}
			cmds = append(cmds, cmd)
			listen := map[string]string{"proxy": cfg.Listen, "collector": cfg.Listen, "replayer": cfg.Admin}[cmd]
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port(listen) || !strings.HasPrefix(listen, "0.0.0.0:") {
				t.Errorf("%s: container ports %+v; loupe %s listens on %s (want 0.0.0.0 and that port)", where, c.Ports, cmd, listen)
			}
			paths := map[string][]string{"proxy": {"/__loupe/healthz"}, "collector": {"/healthz", "/readyz"}, "replayer": {"/healthz", "/readyz"}}[cmd]
			for _, p := range []probe{c.ReadinessProbe, c.LivenessProbe} {
				if !slices.Contains(paths, p.HTTPGet.Path) || len(c.Ports) == 0 || p.HTTPGet.Port != c.Ports[0].Name {
					t.Errorf("%s: probe %+v; loupe %s answers %v on port %q", where, p.HTTPGet, cmd, paths, c.Ports[0].Name)
				}
			}
			if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != "loupe" {
				t.Errorf("%s: takes its environment from %+v, want the Secret loupe", where, c.EnvFrom)
			}
		}
	}
	if deployments != 3 {
		t.Errorf("%d Deployments, want proxy, collector and replayer", deployments)
	}
	secret, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "secret.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		StringData map[string]string `yaml:"stringData"`
	}
	if err := yaml.Unmarshal(secret, &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"LOUPE_SECRET", "LOUPE_DATABASE", "LOUPE_UPSTREAM"} {
		if _, ok := s.StringData[k]; !ok {
			t.Errorf("secret.example.yaml has no %s", k)
		}
	}
	for k := range s.StringData {
		checkEnv(t, "secret.example.yaml", k, cmds...)
	}
}

func TestDeploySystemd(t *testing.T) {
	unit := filepath.Join(deployDir, "systemd", "loupe.service")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var exec_ string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec_ = v
		}
	}
	args := strings.Fields(exec_)
	if len(args) < 2 || args[0] != "/usr/local/bin/loupe" {
		t.Fatalf("ExecStart=%s, want /usr/local/bin/loupe and a command", exec_)
	}
	cmd, _ := checkCommand(t, "loupe.service", args[1:])
	env, err := os.ReadFile(filepath.Join(deployDir, "systemd", "loupe.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			checkEnv(t, "loupe.env.example", k, cmd)
		}
	}

	// systemd itself: every directive known, the binary there.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("no systemd-analyze here: the unit's directives are not checked")
		return
	}
	tmp := filepath.Join(t.TempDir(), "loupe.service")
	os.WriteFile(tmp, bytes.ReplaceAll(b, []byte("/usr/local/bin/loupe"), []byte(loupeBin)), 0o644)
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
