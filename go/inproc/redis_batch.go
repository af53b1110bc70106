package inproc

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// The guide's batch reads and writes (Redis优化 › 缓存策略优化: GetUsers with MGet, SetUsers
// with a Pipeline), their Redis commands as printed, on the port's keys and values: the
// guide's (de)serialization of each value is left out, as the port leaves it out (the
// serialization experiment measures it), so that what is timed is the round trips.

// GetPerKey is the code the guide's MGet replaces: one GET per key, each awaited. It
// returns how many keys were found.
func GetPerKey(ctx context.Context, c *redis.Client, keys []string) (int, error) {
	found := 0
	for _, k := range keys {
		_, err := c.Get(ctx, k).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return found, err
		default:
			found++
		}
	}
	return found, nil
}

// MGetKeys is the guide's GetUsers' read: values, err := s.client.MGet(ctx, keys...).Result().
func MGetKeys(ctx context.Context, c *redis.Client, keys []string) (int, error) {
	values, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, err
	}
	found := 0
	for _, value := range values {
		if value != nil {
			found++
		}
	}
	return found, nil
}

// SetPerKey is the code the guide's pipeline replaces: one SET … EX per key, each awaited.
func SetPerKey(ctx context.Context, c *redis.Client, keys, values []string, ttl time.Duration) error {
	for i, k := range keys {
		if err := c.Set(ctx, k, values[i], ttl).Err(); err != nil {
			return err
		}
	}
	return nil
}

// PipelineSet is the guide's SetUsers' write: pipe := s.client.Pipeline(); pipe.Set(…) per
// key; pipe.Exec(ctx).
func PipelineSet(ctx context.Context, c *redis.Client, keys, values []string, ttl time.Duration) error {
	pipe := c.Pipeline()
	for i, k := range keys {
		pipe.Set(ctx, k, values[i], ttl)
	}
	_, err := pipe.Exec(ctx)
	return err
}
