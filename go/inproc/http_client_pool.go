package inproc

import (
	"net"
	"net/http"
	"time"
)

// HTTP客户端优化配置: the guide's client, as printed (HTTP服务优化 › 连接池优化).
func NewOptimizedHTTPClient() *http.Client {
	transport := &http.Transport{
		// 连接池配置
		MaxIdleConns:        100,              // 最大空闲连接数
		MaxIdleConnsPerHost: 20,               // 每个主机最大空闲连接数
		MaxConnsPerHost:     50,               // 每个主机最大连接数
		IdleConnTimeout:     90 * time.Second, // 空闲连接超时

		// TCP配置
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second, // 连接超时
			KeepAlive: 30 * time.Second, // Keep-Alive间隔
		}).DialContext,

		// TLS配置
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,

		// 禁用HTTP/2（如果需要）
		ForceAttemptHTTP2: false,
	}

	return &http.Client{
		Transport: transport,
		Timeout:   30 * time.Second, // 总超时时间
	}
}

// DefaultTransportClient is what the guide's team had before its settings: an http.Client on
// a clone of http.DefaultTransport (MaxIdleConnsPerHost 2, no MaxConnsPerHost), without a
// proxy from the environment (every variant talks to the service directly).
func DefaultTransportClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t}
}

// NoKeepAliveClient opens a connection per request (DisableKeepAlives).
func NoKeepAliveClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableKeepAlives = true
	return &http.Client{Transport: t}
}
