package kube

import (
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is one Kubernetes target as an agent reaches it through jitproxy.
type Cluster struct {
	Name string
	// Server is the URL agents address, for example https://kubernetes.demo.
	Server string
}

// PlaceholderToken is the user token in agents' kubeconfigs. It is not a
// secret and grants nothing: without some credential kubectl prompts for a
// username, and jitproxy strips whatever the agent sends.
const PlaceholderToken = "jitproxy-injects-the-credential"

// Kubeconfig returns a kubeconfig for an agent session: each cluster's
// server is reached through proxyURL (which carries the session credential)
// and trusts caPEM, the jitproxy CA. Its user holds only PlaceholderToken:
// jitproxy injects the grant's credential. The first cluster is the
// current context.
func Kubeconfig(clusters []Cluster, caPEM []byte, proxyURL string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos["jitproxy-agent"] = &clientcmdapi.AuthInfo{Token: PlaceholderToken}
	for i, c := range clusters {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: caPEM, ProxyURL: proxyURL}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: "jitproxy-agent"}
		if i == 0 {
			cfg.CurrentContext = c.Name
		}
	}
	return clientcmd.Write(*cfg)
}
