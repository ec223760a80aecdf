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

// Kubeconfig returns a kubeconfig for an agent session: each cluster's
// server is reached through proxyURL (which carries the session credential)
// and trusts caPEM, the jitproxy CA. It holds no user credential: jitproxy
// injects the grant's. The first cluster is the current context.
func Kubeconfig(clusters []Cluster, caPEM []byte, proxyURL string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos["jitproxy-agent"] = &clientcmdapi.AuthInfo{}
	for i, c := range clusters {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: caPEM, ProxyURL: proxyURL}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: "jitproxy-agent"}
		if i == 0 {
			cfg.CurrentContext = c.Name
		}
	}
	return clientcmd.Write(*cfg)
}
