package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Slots make the bridge, subnet and CNI network name of an instance unique
// among all running instances on the machine, whichever process started
// them: slot n is held through an flock on slotDir/slot-n for the lifetime
// of the instance and released by the kernel if the process dies. The file
// records the instance's Dir, so the next holder of a slot cleans up after
// an instance whose process died without calling Stop.
const (
	slotDir  = "/run/nodekit-testenv"
	maxSlots = 64
)

type slot struct {
	n int
	f *os.File
}

func (s *slot) bridge() string  { return fmt.Sprintf("nkbr%d", s.n) }             // ≤ 15 bytes
func (s *slot) subnet() string  { return fmt.Sprintf("10.88.%d.0/24", 128+s.n) }  // 10.88.128.0/17
func (s *slot) network() string { return fmt.Sprintf("nodekit-testenv-%d", s.n) } // CNI network name

// cgroupParentFor is the cgroup parent of the instance in dir.
func cgroupParentFor(dir string) string { return "/nodekit-" + filepath.Base(dir) }

func acquireSlot() (*slot, error) {
	if err := os.MkdirAll(slotDir, 0o755); err != nil {
		return nil, err
	}
	for n := range maxSlots {
		f, err := os.OpenFile(filepath.Join(slotDir, "slot-"+strconv.Itoa(n)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		s := &slot{n: n, f: f}
		prev, err := io.ReadAll(f)
		if err != nil {
			s.release()
			return nil, err
		}
		// An earlier instance on this slot died without Stop (or this is a
		// fresh slot and this only removes a stray bridge).
		dir := strings.TrimSpace(string(prev))
		if err := cleanupInstance(dir, s.bridge(), s.network(), cgroupParentFor(dir)); err != nil {
			s.release()
			return nil, fmt.Errorf("cleaning up after an earlier instance on slot %d (%s): %w", n, dir, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("testenv: all %d containerd slots are in use (%s)", maxSlots, slotDir)
}

// record notes dir as the slot's instance.
func (s *slot) record(dir string) error {
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	_, err := s.f.WriteAt([]byte(dir+"\n"), 0)
	return err
}

// release forgets the slot's instance and unlocks the slot.
func (s *slot) release() {
	_ = s.f.Truncate(0)
	_ = s.f.Close()
}

// cleanupInstance removes everything an instance in dir may have left once
// its containerd is gone: processes, shim sockets, mounts, cgroups, the
// bridge, CNI result caches and dir itself. dir may be "" (nothing but the
// bridge to remove).
func cleanupInstance(dir, bridge, network, cgroupParent string) error {
	var errs []error
	if dir != "" {
		if !ownDir(dir) {
			return fmt.Errorf("testenv: refusing to clean up %q: not an instance directory", dir)
		}
		if err := killProcesses(dir, cgroupParent); err != nil {
			errs = append(errs, err)
		}
		if err := unmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
		if err := removeCgroups(cgroupParent); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteLink(bridge); err != nil {
		errs = append(errs, err)
	}
	// libcni caches results in /var/lib/cni/results/<network>-<id>-<if>
	// until CNI DEL, for this network and for containerd's loopback
	// network; pods removed through CRI leave none.
	patterns := []string{network + "-*"}
	for _, id := range sandboxIDs(dir) {
		patterns = append(patterns, "*-"+id+"-*")
	}
	for _, pattern := range patterns {
		cached, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", pattern))
		for _, f := range cached {
			if err := os.Remove(f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sandboxIDs lists the CRI sandboxes the instance in dir has state for:
// directories named by sandbox ID under the CRI plugin's root and state.
func sandboxIDs(dir string) []string {
	if dir == "" {
		return nil
	}
	var ids []string
	for _, d := range []string{"root", "state"} {
		entries, _ := os.ReadDir(filepath.Join(dir, d, "io.containerd.grpc.v1.cri", "sandboxes"))
		for _, e := range entries {
			if len(e.Name()) == 64 && !slices.Contains(ids, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids
}

// ownDir reports whether dir looks like a directory Start created, so that a
// corrupt slot file can never make cleanup remove something else.
func ownDir(dir string) bool {
	return filepath.Dir(dir) == "/tmp" && strings.HasPrefix(filepath.Base(dir), "nk") && filepath.Clean(dir) == dir
}

// killProcesses SIGKILLs every process that refers to dir (in its command
// line, root, working directory or executable) or runs in a cgroup under
// cgroupParent, and waits until they are gone. This catches shims (their
// command line names the socket) and containers whose shim is gone.
func killProcesses(dir, cgroupParent string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		pids := processesOf(dir, cgroupParent)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s survive SIGKILL: %v", dir, pids)
		}
		// Containers first, so that their shims, still alive, reap them;
		// shims only once their containers are gone.
		var containers []int
		for _, pid := range pids {
			if !isShim(pid) {
				containers = append(containers, pid)
			}
		}
		if len(containers) > 0 {
			pids = containers
		}
		for _, pid := range pids {
			removeShimSocket(pid, dir)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesOf lists the live (not zombie) processes that refer to dir or run
// under cgroupParent.
func processesOf(dir, cgroupParent string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if processRefersTo(pid, dir, cgroupParent) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func processRefersTo(pid int, dir, cgroupParent string) bool {
	if isZombieOrGone(pid) {
		return false
	}
	p := "/proc/" + strconv.Itoa(pid)
	under := func(path string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }
	if cmdline, err := os.ReadFile(p + "/cmdline"); err == nil {
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if strings.Contains(arg, dir+"/") || arg == dir {
				return true
			}
		}
	}
	for _, link := range []string{"root", "cwd", "exe"} {
		if target, err := os.Readlink(p + "/" + link); err == nil && under(target) {
			return true
		}
	}
	if cgroupParent != "" {
		if cg, err := os.ReadFile(p + "/cgroup"); err == nil {
			for _, line := range strings.Split(string(cg), "\n") {
				parts := strings.SplitN(line, ":", 3)
				if len(parts) == 3 && (parts[2] == cgroupParent || strings.HasPrefix(parts[2], cgroupParent+"/")) {
					return true
				}
			}
		}
	}
	return false
}

// isShim reports whether pid runs a containerd shim.
func isShim(pid int) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && strings.HasPrefix(filepath.Base(exe), "containerd-shim")
}

// removeShimSocket removes the socket a shim listens on, which it leaves
// behind when killed: /run/containerd/s/<sha256(address/namespace/id)>.
func removeShimSocket(pid int, dir string) {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
		return
	}
	flags := map[string]string{}
	for i := 1; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags[strings.TrimLeft(args[i], "-")] = args[i+1]
		}
	}
	if !strings.HasPrefix(flags["address"], dir+"/") || flags["namespace"] == "" || flags["id"] == "" {
		return
	}
	sum := sha256.Sum256([]byte(filepath.Join(flags["address"], flags["namespace"], flags["id"])))
	_ = os.Remove(fmt.Sprintf("/run/containerd/s/%x", sum))
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	var last error
	for range 5 {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			if err := unix.Unmount(m, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
					last = fmt.Errorf("unmount %s: %w", m, err)
				}
			}
		}
	}
	if mounts, _ := mountsUnder(dir); len(mounts) > 0 {
		return fmt.Errorf("mounts under %s remain: %v (last error: %v)", dir, mounts, last)
	}
	return nil
}

// mountsUnder lists the mount points at or below dir in this mount
// namespace, deepest first.
func mountsUnder(dir string) ([]string, error) {
	mounts, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var under []string
	for _, m := range mounts {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			under = append(under, m.point)
		}
	}
	sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
	return under, nil
}

type mountInfo struct{ point, fstype string }

func readMountinfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		mounts = append(mounts, mountInfo{point: unescapeOctal(fields[4]), fstype: fields[sep+1]})
	}
	return mounts, sc.Err()
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDirs lists, for every cgroup hierarchy, the directory of
// cgroupParent that exists in it.
func cgroupDirs(cgroupParent string) []string {
	mounts, err := readMountinfo()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, m := range mounts {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		d := filepath.Join(m.point, cgroupParent)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// removeCgroups removes cgroupParent and everything below it from every
// hierarchy; the processes in them must be gone already.
func removeCgroups(cgroupParent string) error {
	if cgroupParent == "" || cgroupParent == "/" {
		return nil
	}
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for {
		roots := cgroupDirs(cgroupParent)
		if len(roots) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups remain: %v (last error: %v)", roots, last)
		}
		for _, root := range roots {
			var dirs []string
			_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
			sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
			for _, d := range dirs {
				if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
					last = fmt.Errorf("rmdir %s: %w", d, err)
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // a cgroup is busy until its killed tasks have exited
	}
}

// deleteLink deletes the network interface name, if it exists, with an
// RTM_DELLINK netlink request (no dependency on iproute2).
func deleteLink(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil // no such interface
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	req := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_DELLINK)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(req[8:], 1) // sequence number
	req[16] = unix.AF_UNSPEC
	ne.PutUint32(req[20:], uint32(ifi.Index))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("delete link %s: no netlink answer: %w", name, err)
	}
	if n < unix.SizeofNlMsghdr+4 || ne.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("delete link %s: unexpected netlink answer", name)
	}
	if errno := int32(ne.Uint32(buf[16:])); errno != 0 && unix.Errno(-errno) != unix.ENODEV {
		return fmt.Errorf("delete link %s: %w", name, unix.Errno(-errno))
	}
	return nil
}

// isZombieOrGone reports whether pid has exited.
func isZombieOrGone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z")
}
