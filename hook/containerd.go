package hook

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gmsa-hook/gmsa-hook/hook/container"
)

// ErrContainerd marks a failed label lookup through containerd's API.
var ErrContainerd = errors.New("containerd did not answer")

// containerdTimeout bounds the label lookup: containerd answers in about a
// millisecond; a stuck socket must not eat the hook's deadline.
const containerdTimeout = 3 * time.Second

// containerdLabels asks containerd for a container's labels with one gRPC
// call, containerd.services.containers.v1.Containers/Get, spoken by hand
// over HTTP/2 on the unix socket. The containerd client module would bring
// gRPC and every containerd API type into the binary and their package
// initialisation into every hook run, labelled or not; this needs one
// request message and three response fields.
func containerdLabels(ctx context.Context, address, namespace, id string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, containerdTimeout)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("read labels of %s/%s from containerd at %s: %w: %v", namespace, id, address, ErrContainerd, err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", address)
		},
	}}
	defer client.CloseIdleConnections()

	body := grpcFrame(protoString(1, id)) // GetContainerRequest{id = 1}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://containerd/containerd.services.containers.v1.Containers/Get", bytes.NewReader(body))
	if err != nil {
		return nil, fail(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("containerd-namespace", namespace)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, container.MaxState))
	if err != nil {
		return nil, fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fail(fmt.Errorf("http status %s", resp.Status))
	}
	// A gRPC error comes as trailers, or as headers alone when there is no body.
	status, text := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if status == "" {
		status, text = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if status != "0" {
		code, _ := strconv.Atoi(status)
		return nil, fail(fmt.Errorf("grpc status %d: %s", code, text))
	}
	labels, err := parseGetContainerResponse(msg)
	if err != nil {
		return nil, fail(err)
	}
	return labels, nil
}

// grpcFrame prefixes a message with gRPC's uncompressed length header.
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// protoString encodes one string field.
func protoString(field int, s string) []byte {
	b := binary.AppendUvarint(nil, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// parseGetContainerResponse reads the labels out of one gRPC frame holding
// GetContainerResponse{Container container = 1} where Container has
// map<string, string> labels = 2 (entries {key = 1, value = 2}).
func parseGetContainerResponse(frame []byte) (map[string]string, error) {
	if len(frame) < 5 {
		return nil, errors.New("short grpc response")
	}
	if frame[0] != 0 {
		return nil, errors.New("compressed grpc response")
	}
	n := binary.BigEndian.Uint32(frame[1:5])
	if uint64(n) != uint64(len(frame)-5) {
		return nil, errors.New("grpc response length mismatch")
	}
	labels := map[string]string{}
	err := protoFields(frame[5:], func(f int, v []byte) error {
		if f != 1 {
			return nil
		}
		return protoFields(v, func(f int, v []byte) error {
			if f != 2 {
				return nil
			}
			var k, val string
			err := protoFields(v, func(f int, v []byte) error {
				switch f {
				case 1:
					k = string(v)
				case 2:
					val = string(v)
				}
				return nil
			})
			labels[k] = val
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return labels, nil
}

// protoFields calls fn for every length-delimited field of a protobuf
// message and skips the other wire types.
func protoFields(b []byte, fn func(field int, v []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad protobuf tag")
		}
		b = b[n:]
		field, wire := tag>>3, tag&7
		if field == 0 || field > 1<<29 {
			return errors.New("bad protobuf field number")
		}
		switch wire {
		case 0:
			_, n := binary.Uvarint(b)
			if n <= 0 {
				return errors.New("bad protobuf varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("short protobuf fixed64")
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return errors.New("short protobuf fixed32")
			}
			b = b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errors.New("bad protobuf length")
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			if err := fn(int(field), v); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", wire)
		}
	}
	return nil
}
