package inproc

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The guide's multi-level cache, as printed (缓存优化 › 多级缓存实现). Database is the guide's
// l3, elided there: a Get by key.

type Database interface {
	Get(ctx context.Context, key string) (interface{}, error)
}

// 多级缓存实现
type MultiLevelCache struct {
	l1 *sync.Map     // 内存缓存
	l2 *redis.Client // Redis缓存
	l3 Database      // 数据库

	l1TTL time.Duration
	l2TTL time.Duration
}

type CacheItem struct {
	Data      interface{}
	ExpiresAt time.Time
}

func NewMultiLevelCache(redisClient *redis.Client, db Database) *MultiLevelCache {
	return &MultiLevelCache{
		l1:    &sync.Map{},
		l2:    redisClient,
		l3:    db,
		l1TTL: 5 * time.Minute,
		l2TTL: 30 * time.Minute,
	}
}

func (c *MultiLevelCache) Get(ctx context.Context, key string) (interface{}, error) {
	// L1缓存查询
	if item, ok := c.l1.Load(key); ok {
		cacheItem := item.(*CacheItem)
		if time.Now().Before(cacheItem.ExpiresAt) {
			return cacheItem.Data, nil
		}
		c.l1.Delete(key) // 删除过期项
	}

	// L2缓存查询
	data, err := c.l2.Get(ctx, key).Bytes()
	if err == nil {
		var value interface{}
		if err := json.Unmarshal(data, &value); err == nil {
			// 回填L1缓存
			c.setL1(key, value)
			return value, nil
		}
	}

	// L3数据库查询
	value, err := c.l3.Get(ctx, key)
	if err != nil {
		return nil, err
	}

	// 回填缓存
	go func() {
		c.setL1(key, value)
		c.setL2(ctx, key, value)
	}()

	return value, nil
}

func (c *MultiLevelCache) Set(ctx context.Context, key string, value interface{}) error {
	// 同时设置所有缓存层
	c.setL1(key, value)
	return c.setL2(ctx, key, value)
}

func (c *MultiLevelCache) setL1(key string, value interface{}) {
	item := &CacheItem{
		Data:      value,
		ExpiresAt: time.Now().Add(c.l1TTL),
	}
	c.l1.Store(key, item)
}

func (c *MultiLevelCache) setL2(ctx context.Context, key string, value interface{}) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return c.l2.Set(ctx, key, data, c.l2TTL).Err()
}

// RedisAside is cache-aside in Redis in front of the database, its refill awaited (the port's
// redis-postgres): GET, on a miss the database, then SET with the guide's l2TTL.
type RedisAside struct {
	l2  *redis.Client
	l3  Database
	ttl time.Duration
}

func (c *RedisAside) Get(ctx context.Context, key string) (interface{}, error) {
	if data, err := c.l2.Get(ctx, key).Bytes(); err == nil {
		var value interface{}
		if err := json.Unmarshal(data, &value); err == nil {
			return value, nil
		}
	}
	value, err := c.l3.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	return value, c.l2.Set(ctx, key, data, c.ttl).Err()
}
