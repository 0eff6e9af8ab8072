package config

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// Policy is what a container's credentialspec label or annotation may name,
// and which containers may use which gMSA. Whoever sets a label is not
// trusted; the operator who writes this is. With no policy at all the
// defaults hold: credential specs only from DefaultCredSpecDir, reader
// secrets only from DefaultSecretDir, no AWS ARNs from labels, domains only
// those listed here or realms of the host's krb5.conf, and any gMSA a spec
// in that directory names. Once Rules exist, a gMSA no rule grants is
// refused.
//
//	"policy": {
//	  "credspec_dirs": ["/etc/gmsa-hook/credspecs"],
//	  "secret_dirs":   ["/etc/gmsa-hook/secrets"],
//	  "credspec_arns": ["arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/*"],
//	  "secret_arns":   ["arn:aws:secretsmanager:us-east-1:123456789012:secret:gmsa-reader-*"],
//	  "domains":       ["corp.example.com"],
//	  "rules": [
//	    {"name": "payments-web", "gmsa": ["webapp01"],
//	     "match": {"kubernetes_namespace": ["payments"]}},
//	    {"name": "ecs-billing", "gmsa": ["billing*"],
//	     "match": {"labels": {"com.amazonaws.ecs.cluster": "prod", "com.amazonaws.ecs.task-definition-family": "billing-*"}}}
//	  ]
//	}
type Policy struct {
	// CredSpecDirs are the directories a label's credential spec may come
	// from: "file://NAME.json" is NAME.json in the first that has it, and
	// an absolute path must lie inside one. Default DefaultCredSpecDir.
	CredSpecDirs []string `json:"credspec_dirs,omitempty"`
	// SecretDirs are the directories a spec's file:// CredentialArn (the
	// domainless reader's secret) may lie in. Default DefaultSecretDir.
	SecretDirs []string `json:"secret_dirs,omitempty"`
	// CredSpecARNs are patterns of SSM parameter and S3 object ARNs a label
	// may name; "*" matches any run of characters. Default: none.
	CredSpecARNs []string `json:"credspec_arns,omitempty"`
	// SecretARNs are patterns of Secrets Manager and SSM ARNs a spec's
	// CredentialArn may name. Default: none.
	SecretARNs []string `json:"secret_arns,omitempty"`
	// Domains a spec (and its reader) may belong to, besides the realms of
	// the host's krb5.conf. DNS names, matched without regard to case.
	Domains []string `json:"domains,omitempty"`
	// Rules grant gMSAs to containers. None: any gMSA of an allowed spec.
	Rules []Rule `json:"rules,omitempty"`
}

// Rule grants the gMSAs it names to the containers it matches.
type Rule struct {
	// Name is how a decision names the rule.
	Name string `json:"name"`
	// GMSAs are account names ("webapp01", with or without "$"), "*"
	// patterns allowed.
	GMSAs []string `json:"gmsa"`
	// Domains, when set, limit the rule to gMSAs of these domains.
	Domains []string `json:"domains,omitempty"`
	// Match says which containers the rule applies to; every condition
	// given must hold. An empty Match applies to every container.
	Match Match `json:"match,omitempty"`
}

// Match is what the engine tells about a container. Each list holds
// alternatives ("*" patterns allowed); each map entry must be present with
// a matching value. Only values set by the engine itself deserve trust: the
// CRI plugin's io.kubernetes.* annotations, containerd's namespace, the ECS
// agent's com.amazonaws.ecs.* labels. A label or annotation the container's
// starter can set proves nothing about who the starter is.
type Match struct {
	// KubernetesNamespaces: the pod's namespace, from the CRI annotations
	// io.kubernetes.cri.sandbox-namespace (containerd) or
	// io.kubernetes.pod.namespace (CRI-O).
	KubernetesNamespaces []string `json:"kubernetes_namespace,omitempty"`
	// KubernetesPods: the pod's name (io.kubernetes.cri.sandbox-name or
	// io.kubernetes.pod.name).
	KubernetesPods []string `json:"kubernetes_pod,omitempty"`
	// ContainerdNamespaces: the containerd namespace, from the bundle path
	// ("k8s.io" for Kubernetes, "moby" for Docker, "default" for ctr).
	ContainerdNamespaces []string `json:"containerd_namespace,omitempty"`
	// Images: the image reference, from io.kubernetes.cri.image-name or
	// Docker's container config.
	Images []string `json:"image,omitempty"`
	// Labels: Docker (and ECS) container labels, and containerd labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations: OCI annotations of the container.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Default policy locations.
const (
	DefaultCredSpecDir = "/etc/gmsa-hook/credspecs"
	DefaultSecretDir   = "/etc/gmsa-hook/secrets"
)

// CredSpecDirsOrDefault are the directories label credential specs come from.
func (p *Policy) CredSpecDirsOrDefault() []string {
	if p == nil || len(p.CredSpecDirs) == 0 {
		return []string{DefaultCredSpecDir}
	}
	return p.CredSpecDirs
}

// SecretDirsOrDefault are the directories reader secrets of label specs
// come from.
func (p *Policy) SecretDirsOrDefault() []string {
	if p == nil || len(p.SecretDirs) == 0 {
		return []string{DefaultSecretDir}
	}
	return p.SecretDirs
}

// LoadPolicy reads a policy file: the same object as the "policy" key.
func LoadPolicy(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := decodeStrict(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, file, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, file, err)
	}
	return &p, nil
}

func (p *Policy) validate() error {
	for _, set := range []struct {
		key  string
		dirs []string
	}{{"credspec_dirs", p.CredSpecDirs}, {"secret_dirs", p.SecretDirs}} {
		for _, d := range set.dirs {
			if !path.IsAbs(d) || path.Clean(d) != d || d == "/" {
				return fmt.Errorf("key %q: %q is not a clean absolute directory other than /", set.key, d)
			}
		}
	}
	for _, set := range []struct {
		key      string
		patterns []string
	}{{"credspec_arns", p.CredSpecARNs}, {"secret_arns", p.SecretARNs}} {
		for _, a := range set.patterns {
			if f := strings.SplitN(a, ":", 6); len(f) != 6 || f[0] != "arn" || f[2] == "" || f[5] == "" {
				return fmt.Errorf("key %q: %q is not an ARN pattern (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, * allowed)", set.key, a)
			}
		}
	}
	for _, d := range p.Domains {
		if d == "" || strings.ContainsAny(d, " /*") {
			return fmt.Errorf("key \"domains\": %q is not a DNS domain name", d)
		}
	}
	names := map[string]bool{}
	for i, r := range p.Rules {
		switch {
		case r.Name == "":
			return fmt.Errorf("key \"rules\": rule %d has no \"name\"", i+1)
		case names[r.Name]:
			return fmt.Errorf("key \"rules\": two rules are named %q", r.Name)
		case len(r.GMSAs) == 0:
			return fmt.Errorf("key \"rules\": rule %q names no \"gmsa\"", r.Name)
		}
		names[r.Name] = true
	}
	return nil
}
