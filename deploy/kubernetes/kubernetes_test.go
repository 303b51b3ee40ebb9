// Package kubernetes holds no code: its test checks vipd-daemonset.yaml
// against schema/manifests.schema.json and vipd's deployment policy.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/vipd/vipd/config/loader"
)

const (
	manifestFile = "vipd-daemonset.yaml"
	schemaFile   = "schema/manifests.schema.json"

	// Where deploy/image puts things in the image (its BinaryPath and
	// ConfigPath).
	imageBinary = "/usr/local/sbin/vipd"
	configDir   = "/etc/vipd"
	configKey   = "keepalived.conf"
	stateRoot   = "/var/lib/vipd" // vipd run's default state root
	socketDir   = "/run/vipd"     // of the default control socket
)

// rawDocs reads every YAML document of the manifest as plain JSON values
// (what the schema validator takes: numbers as json.Number).
func rawDocs(t *testing.T) []any {
	t.Helper()
	f, err := os.Open(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", manifestFile, err)
		}
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: document %d is not JSON-compatible: %v", manifestFile, len(docs), err)
		}
		j, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, j)
	}
	return docs
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	abs, err := filepath.Abs(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(abs)
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaFile, err)
	}
	return sch
}

func TestManifestsMatchSchema(t *testing.T) {
	sch := compileSchema(t)
	docs := rawDocs(t)
	kinds := map[string]int{}
	for i, d := range docs {
		if err := sch.Validate(d); err != nil {
			t.Errorf("%s document %d: %v", manifestFile, i, err)
		}
		kind, _ := d.(map[string]any)["kind"].(string)
		kinds[kind]++
	}
	for _, k := range []string{"DaemonSet", "ConfigMap", "Secret"} {
		if kinds[k] != 1 {
			t.Errorf("%s has %d %s, want 1 (kinds %v)", manifestFile, kinds[k], k, kinds)
		}
	}
}

// TestSchemaCatchesMistakes makes sure the schema is strict where a typo
// would otherwise be dropped silently by the API server, or deploy
// something else than written.
func TestSchemaCatchesMistakes(t *testing.T) {
	sch := compileSchema(t)
	tests := []struct {
		name   string
		kind   string
		mutate func(doc map[string]any)
	}{
		{"misspelt hostNetwork", "DaemonSet", func(d map[string]any) {
			ps := podSpec(d)
			ps["hostNetWork"] = ps["hostNetwork"]
			delete(ps, "hostNetwork")
		}},
		{"misspelt capabilities.add", "DaemonSet", func(d map[string]any) {
			caps := container(d)["securityContext"].(map[string]any)["capabilities"].(map[string]any)
			caps["adds"] = caps["add"]
			delete(caps, "add")
		}},
		{"securityContext one level too high", "DaemonSet", func(d map[string]any) {
			c := container(d)
			c["capabilities"] = c["securityContext"].(map[string]any)["capabilities"]
		}},
		{"label value not a string", "DaemonSet", func(d map[string]any) {
			d["metadata"].(map[string]any)["labels"].(map[string]any)["enabled"] = true
		}},
		{"volume of two kinds", "DaemonSet", func(d map[string]any) {
			for _, v := range podSpec(d)["volumes"].([]any) {
				v.(map[string]any)["emptyDir"] = map[string]any{}
			}
		}},
		{"secretKeyRef without key", "DaemonSet", func(d map[string]any) {
			for _, e := range container(d)["env"].([]any) {
				if vf, ok := e.(map[string]any)["valueFrom"].(map[string]any); ok {
					if ref, ok := vf["secretKeyRef"].(map[string]any); ok {
						delete(ref, "key")
					}
				}
			}
		}},
		{"probe command outside exec", "DaemonSet", func(d map[string]any) {
			p := container(d)["livenessProbe"].(map[string]any)
			p["command"] = p["exec"].(map[string]any)["command"]
			delete(p, "exec")
		}},
		{"no selector", "DaemonSet", func(d map[string]any) {
			delete(d["spec"].(map[string]any), "selector")
		}},
		{"apps/v1beta2", "DaemonSet", func(d map[string]any) { d["apiVersion"] = "apps/v1beta2" }},
		{"ConfigMap data not a string", "ConfigMap", func(d map[string]any) {
			d["data"].(map[string]any)["n"] = json.Number("1")
		}},
		{"Secret stringdata", "Secret", func(d map[string]any) {
			d["stringdata"] = d["stringData"]
			delete(d, "stringData")
		}},
		{"Secret data not base64", "Secret", func(d map[string]any) {
			d["data"] = map[string]any{"endpoints": "http://etcd:2379"}
		}},
		{"unknown kind", "Secret", func(d map[string]any) { d["kind"] = "Deployment" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			for _, d := range rawDocs(t) {
				if m := d.(map[string]any); m["kind"] == tt.kind {
					doc = m
				}
			}
			if doc == nil {
				t.Fatalf("no %s in %s", tt.kind, manifestFile)
			}
			if err := sch.Validate(doc); err != nil {
				t.Fatalf("the document is invalid before the change: %v", err)
			}
			tt.mutate(doc)
			if err := sch.Validate(doc); err == nil {
				t.Errorf("the schema accepts the %s after %s", tt.kind, tt.name)
			}
		})
	}
}

func podSpec(ds map[string]any) map[string]any {
	return ds["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
}

func container(ds map[string]any) map[string]any {
	return podSpec(ds)["containers"].([]any)[0].(map[string]any)
}

// The fields the policy is about, typed.
type (
	object struct {
		Kind       string                `yaml:"kind"`
		Metadata   struct{ Name string } `yaml:"metadata"`
		Data       map[string]string     `yaml:"data"`
		StringData map[string]string     `yaml:"stringData"`
		Spec       struct {
			Template struct {
				Spec podSpecT `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpecT struct {
		HostNetwork bool         `yaml:"hostNetwork"`
		DNSPolicy   string       `yaml:"dnsPolicy"`
		Containers  []containerT `yaml:"containers"`
		Volumes     []struct {
			Name      string
			ConfigMap *struct{ Name string } `yaml:"configMap"`
			Secret    *struct {
				SecretName string `yaml:"secretName"`
			} `yaml:"secret"`
			HostPath *struct{ Path, Type string } `yaml:"hostPath"`
			EmptyDir *struct{}                    `yaml:"emptyDir"`
		} `yaml:"volumes"`
	}
	containerT struct {
		Name    string
		Image   string
		Command []string
		Args    []string
		Env     []struct {
			Name      string
			Value     string
			ValueFrom *struct {
				FieldRef *struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		}
		SecurityContext struct {
			Privileged               *bool `yaml:"privileged"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Add, Drop []string
			}
		} `yaml:"securityContext"`
		LivenessProbe *struct {
			Exec *struct{ Command []string }
		} `yaml:"livenessProbe"`
		VolumeMounts []struct {
			Name      string
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
)

func objects(t *testing.T) map[string]object {
	t.Helper()
	b, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	out := map[string]object{}
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", manifestFile, err)
		}
		out[o.Kind] = o
	}
	return out
}

// TestDaemonSetPolicy checks what the schema cannot: the DaemonSet runs in
// the host's network with NET_ADMIN and NET_RAW and nothing more, takes its
// etcd endpoints from the Secret and its node name from the downward API,
// mounts the ConfigMap where the image's command reads it, keeps its state
// on the node, and probes liveness with vipd status.
func TestDaemonSetPolicy(t *testing.T) {
	objs := objects(t)
	ds, cm, secret := objs["DaemonSet"], objs["ConfigMap"], objs["Secret"]
	ps := ds.Spec.Template.Spec
	if !ps.HostNetwork {
		t.Error("hostNetwork is not true: VRRP and the VIPs must be on the node's interfaces")
	}
	if ps.DNSPolicy != "ClusterFirstWithHostNet" {
		t.Errorf("dnsPolicy %q, want ClusterFirstWithHostNet (cluster DNS names for etcd with hostNetwork)", ps.DNSPolicy)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]

	sc := c.SecurityContext
	if add := slices.Sorted(slices.Values(sc.Capabilities.Add)); !slices.Equal(add, []string{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("capabilities.add %v, want exactly NET_ADMIN and NET_RAW", sc.Capabilities.Add)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("privileged must be set to false")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be set to false")
	}
	if !sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true: vipd writes only to /run/vipd and /var/lib/vipd")
	}

	// The image: fully qualified (a registry host first), repository vipd,
	// a tag or digest. A bare "vipd" would be looked up on a public registry.
	ref, _, hasDigest := strings.Cut(c.Image, "@")
	first, _, _ := strings.Cut(ref, "/")
	repo := ref
	tag := ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	if !strings.Contains(ref, "/") || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		t.Errorf("image %q: want a fully qualified name, REGISTRY-HOST/.../vipd:TAG", c.Image)
	}
	if path.Base(repo) != "vipd" || (tag == "" && !hasDigest) {
		t.Errorf("image %q: want repository .../vipd with a tag or digest", c.Image)
	}

	// The image's entrypoint is vipd run; the container only adds arguments.
	if len(c.Command) != 0 {
		t.Errorf("command %v: leave the image's entrypoint (%s run)", c.Command, imageBinary)
	}
	wantConfig := path.Join(configDir, configKey)
	if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != wantConfig {
		t.Errorf("args %v: want --config %s", c.Args, wantConfig)
	}

	env := map[string]int{}
	for i, e := range c.Env {
		env[e.Name] = i
	}
	if i, ok := env["VIPD_ETCD_ENDPOINTS"]; !ok {
		t.Error("no VIPD_ETCD_ENDPOINTS")
	} else if vf := c.Env[i].ValueFrom; c.Env[i].Value != "" || vf == nil || vf.SecretKeyRef == nil {
		t.Error("VIPD_ETCD_ENDPOINTS must come from a Secret (valueFrom.secretKeyRef)")
	} else {
		ref := vf.SecretKeyRef
		if ref.Name != secret.Metadata.Name {
			t.Errorf("VIPD_ETCD_ENDPOINTS from Secret %q, but the Secret is %q", ref.Name, secret.Metadata.Name)
		}
		_, inData := secret.Data[ref.Key]
		val, inString := secret.StringData[ref.Key]
		if !inData && !inString {
			t.Errorf("Secret %q has no key %q", secret.Metadata.Name, ref.Key)
		}
		if inString && !strings.Contains(val, "://") {
			t.Errorf("Secret endpoints %q: want etcd client URLs", val)
		}
	}
	if i, ok := env["VIPD_NODE_NAME"]; !ok {
		t.Error("no VIPD_NODE_NAME")
	} else if vf := c.Env[i].ValueFrom; vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != "spec.nodeName" {
		t.Error("VIPD_NODE_NAME must come from the downward API, fieldRef spec.nodeName")
	}
	for name := range env {
		if !strings.HasPrefix(name, "VIPD_") {
			t.Errorf("env %s: vipd reads only VIPD_<FLAG>", name)
		}
	}

	// Volumes: the ConfigMap at /etc/vipd (read-only), the socket
	// directory, and the state on the node.
	vols := map[string]int{}
	for i, v := range ps.Volumes {
		vols[v.Name] = i
	}
	mounts := map[string]string{} // mount path -> volume name
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volumeMount %s: no such volume", m.Name)
		}
		mounts[m.MountPath] = m.Name
		if m.MountPath == configDir && !m.ReadOnly {
			t.Errorf("%s must be mounted read-only", configDir)
		}
	}
	if v := ps.Volumes[vols[mounts[configDir]]]; mounts[configDir] == "" || v.ConfigMap == nil || v.ConfigMap.Name != cm.Metadata.Name {
		t.Errorf("%s: want the ConfigMap %q mounted there", configDir, cm.Metadata.Name)
	}
	if _, ok := cm.Data[configKey]; !ok {
		t.Errorf("ConfigMap %q has no %s", cm.Metadata.Name, configKey)
	}
	if v := ps.Volumes[vols[mounts[socketDir]]]; mounts[socketDir] == "" || v.EmptyDir == nil {
		t.Errorf("%s: want an emptyDir for the control socket", socketDir)
	}
	if v := ps.Volumes[vols[mounts[stateRoot]]]; mounts[stateRoot] == "" || v.HostPath == nil || v.HostPath.Path != stateRoot || v.HostPath.Type != "DirectoryOrCreate" {
		t.Errorf("%s: want hostPath %s (DirectoryOrCreate), so that state outlives the pod", stateRoot, stateRoot)
	}
	for _, v := range ps.Volumes {
		if v.HostPath != nil && v.HostPath.Path != stateRoot {
			t.Errorf("volume %s: hostPath %s; the only host directory vipd needs is %s", v.Name, v.HostPath.Path, stateRoot)
		}
	}

	if p := c.LivenessProbe; p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{imageBinary, "status"}) {
		t.Errorf("livenessProbe: want exec [%s status]", imageBinary)
	}
}

// TestConfigMapConfigurationIsValid loads the ConfigMap's keepalived.conf
// as vipd run would (interfaces not checked: they are the nodes').
func TestConfigMapConfigurationIsValid(t *testing.T) {
	cm := objects(t)["ConfigMap"]
	p := filepath.Join(t.TempDir(), configKey)
	if err := os.WriteFile(p, []byte(cm.Data[configKey]), 0o644); err != nil {
		t.Fatal(err)
	}
	m, diags := loader.Load(p, loader.Options{})
	if err := diags.Err(); err != nil {
		t.Fatalf("the ConfigMap's %s: %v", configKey, err)
	}
	if len(m.Instances) == 0 {
		t.Errorf("the ConfigMap's %s has no vrrp_instance", configKey)
	}
	for _, d := range diags {
		t.Logf("%v", d)
	}
}
