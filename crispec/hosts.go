package crispec

import (
	"bytes"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Headers of the hosts files the kubelet manages.
const (
	hostsHeader            = "# Kubernetes-managed hosts file.\n"
	hostsHeaderHostNetwork = "# Kubernetes-managed hosts file (host network).\n"
)

// HostsFile renders the /etc/hosts the kubelet gives a pod's containers
// (see ContainerOptions.EtcHostsPath). For a pod on the host network it is
// the node's hosts file, nodeHosts, under a header; otherwise localhost
// entries and one line per pod IP naming the pod's hostname (and FQDN when
// the pod has a subdomain). The pod's hostAliases follow in both cases.
// The caller writes the file, mode 0644, before creating containers.
func (t *Translator) HostsFile(pod *v1.Pod, podIPs []string, nodeHosts []byte) ([]byte, error) {
	if pod == nil {
		return nil, invalidf("nil pod")
	}
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		b.WriteString(hostsHeaderHostNetwork)
		b.Write(nodeHosts)
	} else {
		host, domain, err := t.hostnameAndDomain(pod)
		if err != nil {
			return nil, podErr(pod, err)
		}
		b.WriteString(hostsHeader)
		b.WriteString("127.0.0.1\tlocalhost\n")
		b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\n")
		b.WriteString("fe00::0\tip6-mcastprefix\n")
		b.WriteString("fe00::1\tip6-allnodes\n")
		b.WriteString("fe00::2\tip6-allrouters\n")
		for _, ip := range podIPs {
			if domain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, host, domain, host)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", ip, host)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes(), nil
}
