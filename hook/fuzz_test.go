package hook

import (
	"testing"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

func FuzzGetContainerResponse(f *testing.F) {
	entry := append(protoString(1, container.Key), protoString(2, "file:///x.json")...)
	c := append(protoString(1, "web1"), append([]byte{2<<3 | 2, byte(len(entry))}, entry...)...)
	f.Add(grpcFrame(append([]byte{1<<3 | 2, byte(len(c))}, c...)))
	f.Add(grpcFrame(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		labels, err := parseGetContainerResponse(b)
		if err != nil && labels != nil {
			t.Fatal("labels beside an error")
		}
	})
}
