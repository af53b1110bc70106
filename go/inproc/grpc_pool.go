package inproc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"perflab/workpb"
)

// The guide's gRPC code as printed (网络优化 › gRPC优化), in this package instead of its
// `package grpc` (which would hide the grpc import); `sync` and `fmt`, which it uses without
// importing, are imported.

// gRPC客户端优化
func NewOptimizedGRPCClient(target string) (*grpc.ClientConn, error) {
	return grpc.Dial(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),

		// 连接池配置
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(4*1024*1024), // 4MB
			grpc.MaxCallSendMsgSize(4*1024*1024), // 4MB
		),

		// Keep-Alive配置
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                10 * time.Second, // 发送keepalive ping的间隔
			Timeout:             3 * time.Second,  // 等待keepalive ping响应的超时
			PermitWithoutStream: true,             // 允许在没有活跃流时发送keepalive ping
		}),

		// 连接状态监控
		grpc.WithBlock(),
		grpc.WithTimeout(10*time.Second),
	)
}

// gRPC服务器优化
func NewOptimizedGRPCServer() *grpc.Server {
	return grpc.NewServer(
		// 消息大小限制
		grpc.MaxRecvMsgSize(4*1024*1024), // 4MB
		grpc.MaxSendMsgSize(4*1024*1024), // 4MB

		// Keep-Alive配置
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    60 * time.Second, // 服务器发送keepalive ping的间隔
			Timeout: 5 * time.Second,  // 等待keepalive ping响应的超时
		}),

		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             30 * time.Second, // 客户端发送keepalive ping的最小间隔
			PermitWithoutStream: true,             // 允许在没有活跃流时发送keepalive ping
		}),

		// 连接超时
		grpc.ConnectionTimeout(10*time.Second),
	)
}

// 连接池管理
type GRPCConnectionPool struct {
	connections []*grpc.ClientConn
	current     int
	mu          sync.RWMutex
}

func NewGRPCConnectionPool(target string, size int) (*GRPCConnectionPool, error) {
	pool := &GRPCConnectionPool{
		connections: make([]*grpc.ClientConn, size),
	}

	for i := 0; i < size; i++ {
		conn, err := NewOptimizedGRPCClient(target)
		if err != nil {
			// 关闭已创建的连接
			for j := 0; j < i; j++ {
				pool.connections[j].Close()
			}
			return nil, err
		}
		pool.connections[i] = conn
	}

	return pool, nil
}

func (p *GRPCConnectionPool) GetConnection() *grpc.ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()

	conn := p.connections[p.current]
	p.current = (p.current + 1) % len(p.connections)

	return conn
}

func (p *GRPCConnectionPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()

	var errs []error
	for _, conn := range p.connections {
		if err := conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}

	if len(errs) > 0 {
		return fmt.Errorf("failed to close connections: %v", errs)
	}

	return nil
}

// The service the port's server answers (experiments/grpc-pool): the reply echoes the id and
// digests the payload.

// workPayload is the port's payload: 256 bytes, byte i = i·31 + 7.
func workPayload() []byte {
	p := make([]byte, 256)
	for i := range p {
		p[i] = byte(i*31 + 7)
	}
	return p
}

// workDigest is the port's digest: FNV-1a over the payload 8 times, each round seeded by the
// last.
func workDigest(payload []byte) uint64 {
	h := uint64(0xcbf29ce484222325)
	for range 8 {
		for _, b := range payload {
			h ^= uint64(b)
			h *= 0x100000001b3
		}
	}
	return h
}

type workServer struct {
	workpb.UnimplementedWorkServer
}

func (workServer) Do(_ context.Context, req *workpb.WorkRequest) (*workpb.WorkReply, error) {
	return &workpb.WorkReply{Id: req.Id, Digest: workDigest(req.Payload)}, nil
}
