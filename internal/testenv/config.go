package testenv

import (
	"fmt"
	"path/filepath"
	"strings"
)

// cniBinDir is where Debian's containernetworking-plugins installs the CNI
// plugins.
const cniBinDir = "/usr/lib/cni"

// config returns containerd's config.toml for the instance.
//
// Beyond the minimal configs verified on Debian 12 (sandbox image,
// restrict_oom_score_adj, overlayfs, private CNI dirs): network namespaces are mounted under the state dir instead of /run/netns,
// and the opt plugin's directory is moved into Dir (it would create
// /opt/containerd and put it first in containerd's PATH), so that every
// mount and file of an instance is under Dir. containerd 2 also has NRI
// disabled: its socket, /var/run/nri/nri.sock, is global, so two instances
// would fight over it.
func (c *Containerd) config() string {
	r := strings.NewReplacer(
		"{root}", filepath.Join(c.Dir, "root"),
		"{state}", filepath.Join(c.Dir, "state"),
		"{opt}", filepath.Join(c.Dir, "opt"),
		"{sock}", c.Address(),
		"{cni}", filepath.Join(c.Dir, "cni"),
		"{cnibin}", cniBinDir,
		"{image}", BusyboxImage,
	)
	if c.Version == Containerd16 {
		return r.Replace(config16)
	}
	return r.Replace(config2)
}

const config16 = `version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cnibin}"
    conf_dir = "{cni}"
`

const config2 = `version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "{opt}"

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{image}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cnibin}"]
    conf_dir = "{cni}"
`

// cniConfig returns the instance's CNI network: a bridge without an address
// (isGateway false: no host route, no iptables rules) and host-local IPAM
// keeping its leases under Dir.
func (c *Containerd) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": false,
    "ipMasq": false,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q}]],
      "dataDir": %q
    }
  }]
}
`, c.network, c.Bridge, c.Subnet, filepath.Join(c.Dir, "cni-ipam"))
}
