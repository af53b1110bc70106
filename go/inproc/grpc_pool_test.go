package inproc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"perflab/workpb"
)

// startWorkServer starts the guide's NewOptimizedGRPCServer on loopback with the port's Work
// service, counting the connections it accepts.
func startWorkServer(tb testing.TB) (*grpc.Server, string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	accepted := new(atomic.Int64)
	server := NewOptimizedGRPCServer()
	workpb.RegisterWorkServer(server, workServer{})
	go server.Serve(countingListener{Listener: ln, accepted: accepted})
	return server, ln.Addr().String(), accepted
}

// grpcVariants are the Go originals of grpc-pool: one ClientConn (size 0) or the guide's pool
// of that many, every one dialled by the guide's NewOptimizedGRPCClient.
var grpcVariants = []struct {
	name string
	size int
}{{"single-conn", 0}, {"guide-pool-4", 4}, {"guide-pool-16", 16}}

// dialVariant dials size's connections and returns how a call gets one: the single
// ClientConn, or the guide's GetConnection (round robin under its mutex), and how to close.
func dialVariant(target string, size int) (func() *grpc.ClientConn, func(), error) {
	if size == 0 {
		conn, err := NewOptimizedGRPCClient(target)
		if err != nil {
			return nil, nil, err
		}
		return func() *grpc.ClientConn { return conn }, func() { conn.Close() }, nil
	}
	pool, err := NewGRPCConnectionPool(target, size)
	if err != nil {
		return nil, nil, err
	}
	return pool.GetConnection, func() { pool.Close() }, nil
}

// BenchmarkGRPCPool is a whole-sample benchmark (sample_test.go) measuring what the port's run
// measures (experiments/grpc-pool) with grpc-go itself: a new server per sample (the guide's
// NewOptimizedGRPCServer, in this process, on loopback) answering the port's unary call, and
// callers (the point) in a closed loop, each call through a ClientConn the variant hands out
// and a client stub made on it, as code calling GetConnection per call does. The reply's id is
// checked per call, as the port's callers do (its digest in TestGRPCPoolServesTheDigest).
func BenchmarkGRPCPool(b *testing.B) {
	for _, v := range grpcVariants {
		b.Run(v.name, func(b *testing.B) {
			callers := point(b, 64)
			server, target, accepted := startWorkServer(b)
			defer server.Stop()
			get, closeAll, err := dialVariant(target, v.size)
			if err != nil {
				b.Fatal(err)
			}
			defer closeAll()
			payload := workPayload()
			closedLoop(b, callers, func(i int) operation {
				next := uint64(i) << 40
				return func() string {
					next++
					reply, err := workpb.NewWorkClient(get()).Do(context.Background(), &workpb.WorkRequest{Id: next, Payload: payload})
					if err != nil {
						return "gRPC " + status.Code(err).String()
					}
					if reply.Id != next {
						return "reply to another call"
					}
					return ""
				}
			}, func(m map[string]float64, _ map[string]uint64, _ float64) {
				m["connections"] = float64(accepted.Load())
			})
		})
	}
}

// Every variant opens as many connections as it holds and gets the port's digest back; the
// digest is the port's (the same function in Rust gives the same value for the same bytes).
func TestGRPCPoolServesTheDigest(t *testing.T) {
	if d := workDigest([]byte{1, 2, 3}); d == workDigest([]byte{1, 2, 4}) {
		t.Fatal("the digest does not see the payload")
	}
	if p := workPayload(); len(p) != 256 || p[1] != 38 || p[255] != 232 {
		t.Fatal("the port's payload")
	}
	// The port's test pins the same value (experiments/grpc-pool).
	if d := workDigest(workPayload()); d != 7234460078483587877 {
		t.Fatalf("the payload's digest is %d", d)
	}
	for _, v := range grpcVariants {
		server, target, accepted := startWorkServer(t)
		get, closeAll, err := dialVariant(target, v.size)
		if err != nil {
			t.Fatal(err)
		}
		want := workDigest(workPayload())
		for i := range 2 * max(v.size, 1) {
			reply, err := workpb.NewWorkClient(get()).Do(context.Background(), &workpb.WorkRequest{Id: uint64(i), Payload: workPayload()})
			if err != nil || reply.Id != uint64(i) || reply.Digest != want {
				t.Fatalf("%s: call %d: %v %v", v.name, i, reply, err)
			}
		}
		if n := accepted.Load(); n != int64(max(v.size, 1)) {
			t.Fatalf("%s: %d connections accepted", v.name, n)
		}
		closeAll()
		server.Stop()
	}
}
