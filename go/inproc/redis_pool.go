package inproc

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis配置优化: the guide's client, as printed (Redis优化 › Redis配置优化).
func NewOptimizedRedisClient(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:     addr,
		Password: password,
		DB:       0,

		// 连接池配置
		PoolSize:        20,               // 连接池大小
		MinIdleConns:    5,                // 最小空闲连接数
		MaxIdleConns:    10,               // 最大空闲连接数
		ConnMaxIdleTime: 5 * time.Minute,  // 连接最大空闲时间
		ConnMaxLifetime: 30 * time.Minute, // 连接最大生存时间

		// 超时配置
		DialTimeout:  5 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,

		// 重试配置
		MaxRetries:      3,
		MinRetryBackoff: 8 * time.Millisecond,
		MaxRetryBackoff: 512 * time.Millisecond,
	})
}

// DefaultRedisClient is go-redis with its own defaults (PoolSize 10 × GOMAXPROCS, no
// MinIdleConns, no MaxIdleConns limit), the baseline the guide's settings are set against.
func DefaultRedisClient(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password})
}

// SizedRedisClient is the guide's client with another PoolSize.
func SizedRedisClient(addr, password string, size int) *redis.Client {
	c := NewOptimizedRedisClient(addr, password)
	opts := c.Options()
	_ = c.Close()
	o := *opts
	o.PoolSize = size
	return redis.NewClient(&o)
}
