package cpumanager

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "checkpoint", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChecksumText(t *testing.T) {
	// The data checksum hashes "(string)" + data.
	if got := dataChecksum(`{"policyName":"none","defaultCPUSet":"4-6"}`); got != 657950972 {
		t.Errorf("data checksum = %d, want 657950972", got)
	}
	v2 := checkpointV2{PolicyName: "static", DefaultCPUSet: "7-9", Entries: map[string]map[string]string{
		"pod": {"container1": "4-6", "container2": "1-3"},
	}}
	if got := v2Checksum("CPUManagerCheckpoint", &v2); got != 964019483 {
		t.Errorf("v2 checksum = %d, want 964019483", got)
	}
	v3 := checkpointV3{PolicyName: v2.PolicyName, DefaultCPUSet: v2.DefaultCPUSet, Entries: v2.Entries, PodEntries: map[string]podCPUEntry{}}
	if got := v3Checksum("CPUManagerCheckpointV3", &v3); got != 1942532442 {
		t.Errorf("v3 checksum = %d, want 1942532442", got)
	}
	cur := checkpointV2{PolicyName: "static", DefaultCPUSet: "0-1,3,5-7,9,11", Entries: map[string]map[string]string{
		"6f1c2f2e-6b3d-4c55-9a8e-0a1b2c3d4e5f": {"app": "2,8", "sidecar": "4"},
		"b0d7a3c1-1111-4e2a-8b9c-7f6e5d4c3b2a": {"db": "10"},
	}}
	if got := v2Checksum("CPUManagerCheckpoint", &cur); got != 3891659673 {
		t.Errorf("legacy checksum of kubelet-static.json = %d, want 3891659673", got)
	}
	// A nil and an empty map print differently, and so hash differently.
	empty := checkpointV2{PolicyName: "none", Entries: map[string]map[string]string{}}
	none := checkpointV2{PolicyName: "none"}
	if v2Checksum("CPUManagerCheckpoint", &empty) == v2Checksum("CPUManagerCheckpoint", &none) {
		t.Error("nil and empty entries hash alike")
	}
	if got := spewPodEntries(map[string]podCPUEntry{"b": {cpuset.New(9, 7, 8)}, "a": {cpuset.New()}}); got !=
		"map[a:{CPUSet:(cpuset.CPUSet){elems:(map[int]struct {})map[]}} b:{CPUSet:(cpuset.CPUSet){elems:(map[int]struct {})map[7:{} 8:{} 9:{}]}}]" {
		t.Errorf("pod entries print as %s", got)
	}
}

func TestCheckpointKubeletFiles(t *testing.T) {
	want := State{DefaultCPUSet: mustParse(t, "0-1,3,5-7,9,11")}
	want.SetCPUSet("6f1c2f2e-6b3d-4c55-9a8e-0a1b2c3d4e5f", "app", cpuset.New(2, 8))
	want.SetCPUSet("6f1c2f2e-6b3d-4c55-9a8e-0a1b2c3d4e5f", "sidecar", cpuset.New(4))
	want.SetCPUSet("b0d7a3c1-1111-4e2a-8b9c-7f6e5d4c3b2a", "db", cpuset.New(10))

	for _, tc := range []struct {
		file   string
		policy string
		state  State
	}{
		{"kubelet-static.json", PolicyStatic, want},
		{"kubelet-none.json", PolicyNone, State{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := readTestdata(t, tc.file)
			policy, got, err := UnmarshalCheckpoint(b)
			if err != nil {
				t.Fatal(err)
			}
			if policy != tc.policy || !got.equal(&tc.state) {
				t.Errorf("read %s %s %s, want %s %s %s", policy, got.DefaultCPUSet, got.Assignments, tc.policy, tc.state.DefaultCPUSet, tc.state.Assignments)
			}
			// Written back, it is the kubelet's file byte for byte.
			again, err := MarshalCheckpoint(tc.policy, &tc.state)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("written:\n%s\nkubelet's:\n%s", again, b)
			}
		})
	}
}

func TestCheckpointOlderLayouts(t *testing.T) {
	v2, s, err := UnmarshalCheckpoint(readTestdata(t, "kubelet-v2-static.json"))
	if err != nil {
		t.Fatalf("v2: %v", err)
	}
	if v2 != PolicyStatic || s.DefaultCPUSet.String() != "7-9" || s.Assignments.String() != `{"pod":{"container1":"4-6","container2":"1-3"}}` {
		t.Errorf("v2 read %s %s %s", v2, s.DefaultCPUSet, s.Assignments)
	}
	// v3's checksum covers its pod-level entries, which are then ignored.
	v3, s, err := UnmarshalCheckpoint(readTestdata(t, "kubelet-v3-static.json"))
	if err != nil {
		t.Fatalf("v3: %v", err)
	}
	if v3 != PolicyStatic || s.DefaultCPUSet.String() != "1-2" || s.Assignments.String() != `{"pod1":{"container1":"5-6","container2":"3-4"}}` {
		t.Errorf("v3 read %s %s %s", v3, s.DefaultCPUSet, s.Assignments)
	}
	// v1 is rejected, as the kubelet rejects it.
	if _, _, err := UnmarshalCheckpoint(readTestdata(t, "kubelet-v1-static.json")); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("v1: err = %v, want ErrCorruptCheckpoint", err)
	}
}

func TestCheckpointLegacyChecksums(t *testing.T) {
	// The same legacy content under each checksum a kubelet accepts: v2
	// and v3 (empty pod entries) structs, each under its own type name
	// or the historical CPUManagerCheckpoint.
	for _, sum := range []uint64{964019483, 1692845551, 1942532442, 1844444301, 0} {
		file := fmt.Sprintf(`{"policyName":"static","defaultCpuSet":"7-9","entries":{"pod":{"container1":"4-6","container2":"1-3"}},"checksum":%d}`, sum)
		if _, s, err := UnmarshalCheckpoint([]byte(file)); err != nil || s.DefaultCPUSet.String() != "7-9" || s.NumExclusiveContainers() != 2 {
			t.Errorf("checksum %d: %v", sum, err)
		}
	}
	file := `{"policyName":"static","defaultCpuSet":"7-9","entries":{"pod":{"container1":"4-6","container2":"1-3"}},"checksum":5}`
	if _, _, err := UnmarshalCheckpoint([]byte(file)); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("checksum 5: err = %v", err)
	}
}

func TestCheckpointDecodeCases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		wantErr string // "" = must decode
		want    string // policy default entries
	}{
		{
			name: "v4 ignores its legacy part", // here deliberately wrong
			file: `{"policyName":"other","defaultCPUSet":"1-9","checksum":1234,
				"data":"{\"policyName\":\"none\",\"defaultCPUSet\":\"4-6\"}","dataChecksum":657950972}`,
			want: "none 4-6 {}",
		},
		{
			name: "v4 with unknown fields in data",
			file: `{"policyName":"other","checksum":1234,
				"data":"{\"policyName\":\"none\",\"defaultCPUSet\":\"4-6\",\"unknownField\":\"value\"}","dataChecksum":3492408555}`,
			want: "none 4-6 {}",
		},
		{
			name: "v4 with entries",
			file: `{"policyName":"other","checksum":1234,
				"data":"{\"policyName\":\"static\",\"defaultCPUSet\":\"7-9\",\"entries\":{\"pod\":{\"container1\":\"4-6\",\"container2\":\"1-3\"}}}","dataChecksum":1420829534}`,
			want: `static 7-9 {"pod":{"container1":"4-6","container2":"1-3"}}`,
		},
		{
			name: "v4 with pod-level entries and baselines, ignored",
			file: `{"policyName":"other","checksum":1234,
				"data":"{\"policyName\":\"static\",\"defaultCPUSet\":\"1-3\",\"entries\":{\"pod\":{\"container1\":\"4-6\",\"container2\":\"7-9\"}},\"podEntries\":{\"pod\":{\"cpuSet\":\"4-10\"}},\"baselines\":{\"pod\":{\"container1\":{\"baseline\":\"4-5\"},\"container2\":{\"baseline\":\"7-8\"}}}}","dataChecksum":1032795074}`,
			want: `static 1-3 {"pod":{"container1":"4-6","container2":"7-9"}}`,
		},
		{
			name: "v2 with a zero checksum, from the oldest file backend",
			file: `{"policyName":"static","defaultCpuSet":"0-3","checksum":0}`,
			want: "static 0-3 {}",
		},
		{
			name:    "v4 with a wrong data checksum",
			file:    `{"policyName":"static","checksum":1942532442,"data":"{\"policyName\":\"static\",\"defaultCPUSet\":\"7-9\"}","dataChecksum":1234}`,
			wantErr: "could not load v4 checkpoint: checkpoint is corrupted",
		},
		{
			name: "v4 without its data checksum",
			file: `{"policyName":"static","defaultCPUSet":"7-9","entries":{"pod":{"container1":"4-6","container2":"1-3"}},"checksum":1942532442,
				"data":"{\"policyName\":\"static\",\"defaultCPUSet\":\"7-9\",\"entries\":{\"pod\":{\"container1\":\"4-6\",\"container2\":\"1-3\"}}}"}`,
			wantErr: "could not load v4 checkpoint: checkpoint is corrupted",
		},
		{
			name:    "v4 without its data",
			file:    `{"policyName":"static","defaultCPUSet":"7-9","checksum":1942532442,"dataChecksum":1234}`,
			wantErr: "could not load v4 checkpoint: failed to deserialize cpu manager checkpoint data: unexpected end of JSON input",
		},
		{
			name:    "v2 with a wrong checksum",
			file:    `{"policyName":"static","defaultCPUSet":"7-9","checksum":1}`,
			wantErr: "checkpoint is corrupted",
		},
		{
			name:    "v2 content under a v1 checksum",
			file:    `{"policyName":"none","defaultCPUSet":"1-3","checksum":1694838852}`,
			wantErr: "checkpoint is corrupted",
		},
		{
			name:    "not JSON",
			file:    `{`,
			wantErr: "unexpected end of JSON input",
		},
		{
			name:    "empty",
			file:    ``,
			wantErr: "unexpected end of JSON input",
		},
		{
			name:    "unparsable default set",
			file:    `{"policyName":"none","checksum":98002435,"data":"{\"policyName\":\"none\",\"defaultCPUSet\":\"1.3\"}","dataChecksum":3033143655}`,
			wantErr: `could not parse default CPU set "1.3"`,
		},
		{
			name:    "unparsable assignment",
			file:    `{"policyName":"static","checksum":1659543133,"data":"{\"policyName\":\"static\",\"defaultCPUSet\":\"1-3\",\"entries\":{\"pod\":{\"container1\":\"4-6\",\"container2\":\"asd\"}}}","dataChecksum":3794806925}`,
			wantErr: `could not parse cpuset "asd" for container "container2" in pod "pod"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy, s, err := UnmarshalCheckpoint([]byte(tc.file))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrCorruptCheckpoint with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%s %s %s", policy, s.DefaultCPUSet, s.Assignments); got != tc.want {
				t.Errorf("decoded %q, want %q", got, tc.want)
			}
		})
	}
}

func randomState(r *rand.Rand) State {
	set := func() cpuset.CPUSet {
		var l []int
		for i := r.Intn(6); i > 0; i-- {
			l = append(l, r.Intn(256))
		}
		return cpuset.New(l...)
	}
	s := State{DefaultCPUSet: set()}
	names := []string{"app", "init-0", "sidecar", "a b", `q"uote`, "<html>&", "é"}
	for p := r.Intn(4); p > 0; p-- {
		uid := fmt.Sprintf("%08x-%04x", r.Uint32(), r.Intn(1<<16))
		for c := 1 + r.Intn(3); c > 0; c-- {
			s.SetCPUSet(uid, names[r.Intn(len(names))], set())
		}
	}
	return s
}

func TestCheckpointRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 200; i++ {
		s := randomState(r)
		policy := []string{PolicyStatic, PolicyNone}[i%2]
		b, err := MarshalCheckpoint(policy, &s)
		if err != nil {
			t.Fatal(err)
		}
		gotPolicy, got, err := UnmarshalCheckpoint(b)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, b)
		}
		if gotPolicy != policy || !got.equal(&s) {
			t.Fatalf("case %d: read back %s %s %s, wrote %s %s", i, gotPolicy, got.DefaultCPUSet, got.Assignments, s.DefaultCPUSet, s.Assignments)
		}
		// Any change to the data is caught by its checksum.
		flipped := bytes.Replace(b, []byte(`\"policyName\":\"`), []byte(`\"policyName\":\"x`), 1)
		if _, _, err := UnmarshalCheckpoint(flipped); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("case %d: a changed file decoded: %v", i, err)
		}
	}
}

func TestReadWriteCheckpointFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", CheckpointFileName)
	if _, _, err := ReadCheckpoint(path); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing file: err = %v, want ErrNotFound", err)
	}
	s := State{DefaultCPUSet: cpuset.New(0, 1)}
	s.SetCPUSet("pod", "app", cpuset.New(2, 3))
	if err := WriteCheckpoint(path, PolicyStatic, &s); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 as the kubelet's", info.Mode().Perm())
	}
	policy, got, err := ReadCheckpoint(path)
	if err != nil || policy != PolicyStatic || !got.equal(&s) {
		t.Fatalf("read back %s %v: %v", policy, got, err)
	}
	if err := os.WriteFile(path, []byte("{}garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadCheckpoint(path); !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt file: err = %v", err)
	}
}

// faultyFiles wraps the real file system, failing one step of a write.
type faultyFiles struct {
	osFiles
	failAt     string // "mkdir", "create", "write", "sync", "close", "rename", "syncdir"
	writeLimit int    // bytes written before a "write" failure
}

var errInjected = errors.New("injected failure")

func (f faultyFiles) MkdirAll(dir string, perm fs.FileMode) error {
	if f.failAt == "mkdir" {
		return errInjected
	}
	return f.osFiles.MkdirAll(dir, perm)
}

func (f faultyFiles) CreateTemp(dir, pattern string) (tempFile, error) {
	if f.failAt == "create" {
		return nil, errInjected
	}
	file, err := f.osFiles.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultyFile{tempFile: file, fs: f}, nil
}

func (f faultyFiles) Rename(from, to string) error {
	if f.failAt == "rename" {
		return errInjected
	}
	return f.osFiles.Rename(from, to)
}

func (f faultyFiles) SyncDir(dir string) error {
	if f.failAt == "syncdir" {
		return errInjected
	}
	return f.osFiles.SyncDir(dir)
}

type faultyFile struct {
	tempFile
	fs faultyFiles
}

func (f *faultyFile) Write(b []byte) (int, error) {
	if f.fs.failAt == "write" {
		n, _ := f.tempFile.Write(b[:f.fs.writeLimit])
		return n, errInjected
	}
	return f.tempFile.Write(b)
}

func (f *faultyFile) Sync() error {
	if f.fs.failAt == "sync" {
		return errInjected
	}
	return f.tempFile.Sync()
}

func (f *faultyFile) Close() error {
	err := f.tempFile.Close()
	if f.fs.failAt == "close" {
		return errInjected
	}
	return err
}

func TestWriteCheckpointCrashSafety(t *testing.T) {
	for _, failAt := range []string{"mkdir", "create", "write", "sync", "close", "rename"} {
		t.Run(failAt, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, CheckpointFileName)
			old := State{DefaultCPUSet: mustParse(t, "0-7")}
			if err := WriteCheckpoint(path, PolicyStatic, &old); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)

			next := State{DefaultCPUSet: mustParse(t, "0-5")}
			next.SetCPUSet("pod", "app", cpuset.New(6, 7))
			b, err := MarshalCheckpoint(PolicyStatic, &next)
			if err != nil {
				t.Fatal(err)
			}
			err = writeFileAtomic(faultyFiles{failAt: failAt, writeLimit: len(b) / 2}, path, b)
			if !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("the checkpoint changed:\n%s", after)
			}
			if _, s, err := ReadCheckpoint(path); err != nil || !s.equal(&old) {
				t.Errorf("the previous checkpoint no longer reads: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("files left behind: %v", entries)
			}
		})
	}
	t.Run("syncdir", func(t *testing.T) {
		// The rename happened: the new file is in place, but its
		// durability is reported as uncertain.
		path := filepath.Join(t.TempDir(), CheckpointFileName)
		s := State{DefaultCPUSet: mustParse(t, "0-3")}
		b, _ := MarshalCheckpoint(PolicyStatic, &s)
		if err := writeFileAtomic(faultyFiles{failAt: "syncdir"}, path, b); !errors.Is(err, errInjected) {
			t.Fatalf("err = %v", err)
		}
		if _, got, err := ReadCheckpoint(path); err != nil || !got.equal(&s) {
			t.Errorf("new file not in place: %v", err)
		}
	})
}

func TestCheckpointLeftoverTempFile(t *testing.T) {
	// A crash between writing the temporary file and renaming it leaves
	// the temporary file (perhaps partial) beside a valid checkpoint.
	dir := t.TempDir()
	path := filepath.Join(dir, CheckpointFileName)
	s := State{DefaultCPUSet: mustParse(t, "0-7")}
	if err := WriteCheckpoint(path, PolicyStatic, &s); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, checkpointTempPrefix(path)+"1234567")
	if err := os.WriteFile(leftover, []byte(`{"policyName":"static","defaultCpu`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ReadCheckpoint(path); err != nil || !got.equal(&s) {
		t.Fatalf("checkpoint beside a leftover: %v", err)
	}
	// The next writer carries on, and an allocator starting cleans up.
	s.DefaultCPUSet = mustParse(t, "0-6")
	if err := WriteCheckpoint(path, PolicyStatic, &s); err != nil {
		t.Fatal(err)
	}
	if err := removeStaleTempFiles(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover still there: %v", err)
	}
	if _, got, err := ReadCheckpoint(path); err != nil || got.DefaultCPUSet.String() != "0-6" {
		t.Errorf("checkpoint after cleanup: %v %v", got.DefaultCPUSet, err)
	}
}
