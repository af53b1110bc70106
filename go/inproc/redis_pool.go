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

// GuideRedisOptions are the guide's settings (NewOptimizedRedisClient's, a Go test checks
// them) applied to base, the run's Redis as its URL gives it (address, password, username,
// database, TLS), with PoolSize size.
func GuideRedisOptions(base *redis.Options, size int) *redis.Options {
	o := *base
	o.DB = 0
	o.PoolSize = size
	o.MinIdleConns = 5
	o.MaxIdleConns = 10
	o.ConnMaxIdleTime = 5 * time.Minute
	o.ConnMaxLifetime = 30 * time.Minute
	o.DialTimeout = 5 * time.Second
	o.ReadTimeout = 3 * time.Second
	o.WriteTimeout = 3 * time.Second
	o.MaxRetries = 3
	o.MinRetryBackoff = 8 * time.Millisecond
	o.MaxRetryBackoff = 512 * time.Millisecond
	return &o
}
