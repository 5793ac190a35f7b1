package container

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// instructions returns the Containerfile's instructions, keyword -> the
// argument strings of each occurrence.
func instructions(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		in[strings.ToUpper(kw)] = append(in[strings.ToUpper(kw)], strings.TrimSpace(rest))
	}
	return in
}

// TestContainerfile checks what the image must be: an empty base, the two
// binaries, a non-root numeric user, /data a volume owned by that user,
// dcepd the entrypoint, SIGTERM to stop.
func TestContainerfile(t *testing.T) {
	in := instructions(t)
	if got := in["FROM"]; len(got) != 1 || got[0] != "scratch" {
		t.Errorf("FROM %v, want one stage FROM scratch", got)
	}
	user := in["USER"]
	if len(user) != 1 || strings.HasPrefix(user[0], "0") || strings.HasPrefix(user[0], "root") {
		t.Errorf("USER %v, want one non-root user", user)
	}
	if !slices.Contains(in["VOLUME"], `["/data"]`) {
		t.Errorf("VOLUME %v, want [\"/data\"]", in["VOLUME"])
	}
	copies := strings.Join(in["COPY"], "\n")
	for _, want := range []string{"dcepd /usr/local/bin/dcepd", "dcep /usr/local/bin/dcep", "--chown=" + user[0] + " data/ /data/"} {
		if !strings.Contains(copies, want) {
			t.Errorf("no COPY ... %s", want)
		}
	}
	if got := in["ENTRYPOINT"]; len(got) != 1 || got[0] != `["/usr/local/bin/dcepd"]` {
		t.Errorf("ENTRYPOINT %v", got)
	}
	if got := in["STOPSIGNAL"]; len(got) != 1 || got[0] != "SIGTERM" {
		t.Errorf("STOPSIGNAL %v", got)
	}
}

// TestImageBinariesStatic builds the context with build.sh exactly as the
// image build does and checks each binary is a static ELF executable: no
// PT_INTERP (dynamic loader) and no DT_NEEDED libraries, so it runs on an
// empty base. With podman on the PATH it then builds the image from that
// context and checks its config.
func TestImageBinariesStatic(t *testing.T) {
	ctx := t.TempDir()
	cmd := exec.Command("bash", "build.sh")
	cmd.Env = append(os.Environ(), "CONTEXT_ONLY="+ctx)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	for _, name := range []string{"dcepd", "dcep"} {
		checkStatic(t, filepath.Join(ctx, name))
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("DCEP_REQUIRE_TOOLS") != "" {
			t.Fatal("podman not installed and DCEP_REQUIRE_TOOLS is set")
		}
		t.Skip("podman not installed: the image itself is not built")
	}
	tag := "localhost/dcep:test"
	if out, err := exec.Command(podman, "build", "-q", "-t", tag, "-f", filepath.Join(ctx, "Containerfile"), ctx).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	out, err := exec.Command(podman, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var img []struct {
		Config struct {
			User       string
			Volumes    map[string]struct{}
			Entrypoint []string
			StopSignal string
		}
	}
	if err := json.Unmarshal(out, &img); err != nil || len(img) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	c := img[0].Config
	if c.User != "65532:65532" || len(c.Volumes) != 1 || c.Entrypoint[0] != "/usr/local/bin/dcepd" {
		t.Errorf("image config %+v", c)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("image volumes %v, want /data", c.Volumes)
	}
}

func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader (PT_INTERP): not static", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v)", path, libs, err)
	}
	if file, err := exec.LookPath("file"); err == nil {
		out, _ := exec.Command(file, path).Output()
		if !strings.Contains(string(out), "statically linked") {
			t.Errorf("file %s: %s", path, out)
		}
	}
}
